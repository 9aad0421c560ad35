"""File key store: keys as 0600 files in a 0700 folder (development and first units)."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import KeyStoreError
from ..keyid import fingerprint  # noqa: F401  (re-exported: the key store shows keys by it)

KEY = "file"
SIGNING_FILE = "unit-ed25519.pem"
AGE_FILE = "unit-age.key"
DEPLOYMENT_DIR = "deployments"
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class FileKeyStore:
    """Keys in files under ``root``; refuses files readable by group or others."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def exists(self) -> bool:
        """True when both keys are present."""
        return (self.root / SIGNING_FILE).exists() and (self.root / AGE_FILE).exists()

    def init(self) -> None:
        """Create the unit's Ed25519 and age X25519 keys; refuse to overwrite existing ones."""
        if self.exists():
            raise KeyStoreError(f"keys already exist in {self.root}",
                                fix="keep them; delete the folder only to re-provision the unit")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write_secret(self.root / SIGNING_FILE, pem)
        _write_secret(self.root / AGE_FILE, (str(pyrage.x25519.Identity.generate()) + "\n").encode())

    def _read(self, name: str) -> bytes:
        path = self.root / name
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeyStoreError(f"no key at {path}", fix="run `appliance keys init` on this unit") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyStoreError(f"{path} is readable by others (mode {oct(mode & 0o777)})",
                                fix=f"chmod 600 {path}")
        return path.read_bytes()

    def signing_key(self) -> Ed25519PrivateKey:
        """The unit's Ed25519 private key."""
        key = serialization.load_pem_private_key(self._read(SIGNING_FILE), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{self.root / SIGNING_FILE} is not an Ed25519 key",
                                fix="re-provision the unit's keys")
        return key

    def verify_key(self) -> Ed25519PublicKey:
        """The unit's Ed25519 public key."""
        return self.signing_key().public_key()

    def age_identity(self) -> str:
        """The unit's age identity string."""
        return self._read(AGE_FILE).decode().strip()

    def age_recipient(self) -> str:
        """The unit's age recipient string (give this to the back office)."""
        return str(pyrage.x25519.Identity.from_str(self.age_identity()).to_public())

    def signing_public_raw(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return self.verify_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def _deployment_path(self, name: str) -> Path:
        if not _DEPLOYMENT_NAME.match(name):
            raise KeyStoreError(f"'{name}' is not a valid deployment key name", fix="use the deployment id")
        return self.root / DEPLOYMENT_DIR / f"{name}.key"

    def create_deployment_identity(self, name: str) -> str:
        """Create a fresh age identity for one deployment (0600); return its recipient.

        The unit keeps its copy of a deployment's watchlist encrypted to this
        identity only; destroying it at the end of the deployment makes any copy
        left on the flash unreadable (crypto-shredding).
        """
        path = self._deployment_path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        identity = pyrage.x25519.Identity.generate()
        try:
            _write_secret(path, (str(identity) + "\n").encode())
        except FileExistsError:
            raise KeyStoreError(f"a key for deployment {name} already exists",
                                fix="end that deployment first (`appliance deployment end`)") from None
        return str(identity.to_public())

    def deployment_identity(self, name: str) -> str:
        """The age identity string of one deployment."""
        return self._read(f"{DEPLOYMENT_DIR}/{self._deployment_path(name).name}").decode().strip()

    def destroy_deployment_identity(self, name: str) -> bool:
        """Overwrite and delete one deployment's key; False when it was already gone."""
        path = self._deployment_path(name)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\x00" * max(path.stat().st_size, 128))
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
        return True

    def deployment_names(self) -> list[str]:
        """Names of the deployment keys present (for the purge sweep and status)."""
        folder = self.root / DEPLOYMENT_DIR
        return sorted(p.stem for p in folder.glob("*.key")) if folder.is_dir() else []


def open_store(root: Path) -> FileKeyStore:
    """Backend entry point used by :func:`appliance.keystore.open_keystore`."""
    return FileKeyStore(root)
