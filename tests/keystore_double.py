"""A second key-store backend, a test double: keys in memory only, as a TPM would keep them
out of the filesystem. Registered by tests/test_unit.py under the name "double"."""
from __future__ import annotations

from pathlib import Path

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY = "double"
OPENED: list[Path] = []  # every open, so a test can count them
_KEYS: dict[Path, tuple[Ed25519PrivateKey, pyrage.x25519.Identity]] = {}


class MemoryKeyStore:
    """The unit's keys, generated once per root, never written anywhere."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._signing, self._age = _KEYS.setdefault(root, (Ed25519PrivateKey.generate(),
                                                            pyrage.x25519.Identity.generate()))

    def exists(self) -> bool:
        """Always provisioned."""
        return True

    def signing_key(self) -> Ed25519PrivateKey:
        """The unit's Ed25519 key."""
        return self._signing

    def verify_key(self) -> Ed25519PublicKey:
        """Its public half."""
        return self._signing.public_key()

    def age_identity(self) -> str:
        """The age identity."""
        return str(self._age)

    def age_recipient(self) -> str:
        """The age recipient."""
        return str(self._age.to_public())


def open_store(root: Path) -> MemoryKeyStore:
    """Backend entry point used by appliance.keystore.open_keystore."""
    OPENED.append(Path(root))
    return MemoryKeyStore(Path(root))
