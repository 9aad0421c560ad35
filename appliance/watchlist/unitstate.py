"""What the deployment lifecycle keeps on the unit besides its SQLite record: the key store it
needs (a protocol), the cross-process lock, and atomic owner-only file writes."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

LOCK_FILE = "deployment.lock"


class DeploymentKeyStore(Protocol):
    """What the lifecycle needs from the key store (the file backend now; TPM2 later)."""

    def age_identity(self) -> str:
        """The unit's age identity (decrypts bundles addressed to the unit)."""
        ...

    def age_recipient(self) -> str:
        """The unit's age recipient."""
        ...

    def create_deployment_identity(self, name: str) -> str:
        """Create a per-deployment key; return its recipient."""
        ...

    def deployment_identity(self, name: str) -> str:
        """The per-deployment identity."""
        ...

    def destroy_deployment_identity(self, name: str) -> bool:
        """Overwrite and delete a per-deployment key."""
        ...

    def deployment_names(self) -> list[str]:
        """Names of the per-deployment keys present."""
        ...


@contextmanager
def unit_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive lock across processes for start, end and sweep (never held while matching)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, *parts: bytes) -> None:
    """Write ``parts`` to ``path`` owner-only, fsync, then rename over it: a power cut leaves the old file or the new."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        for part in parts:
            fh.write(part)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
