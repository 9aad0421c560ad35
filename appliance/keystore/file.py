"""File key store: keys as 0600 files in a 0700 folder (development and first units).

Every read is defensive: the folder must be a real directory (not a symlink) that only
its owner can enter, and a key file must be a regular file (never a FIFO, which would
block the unit forever, or a directory), not a symlink, 0600 or stricter, non-empty
and small; its content must parse as the key it should be. Anything else is a
KeyStoreError (exit code 8) that names the file and the fix.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pyrage
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import KeyStoreError
from ..keyid import fingerprint  # noqa: F401  (re-exported: the key store shows keys by it)

KEY = "file"
MAX_KEY_BYTES = 16 * 1024
SIGNING_FILE = "unit-ed25519.pem"
AGE_FILE = "unit-age.key"
DEPLOYMENT_DIR = "deployments"
_DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


def check_private_dir(folder: Path) -> None:
    """``folder`` must be a directory (not a symlink to one) that group and others cannot enter."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        raise KeyStoreError(f"no key folder at {folder}", fix="run `appliance keys init` on this unit") from None
    except OSError as exc:
        raise KeyStoreError(f"cannot read the key folder {folder}: {exc.strerror}", fix=f"check {folder}") from None
    if stat.S_ISLNK(info.st_mode):
        raise KeyStoreError(f"the key folder {folder} is a symlink", fix=f"make {folder} a real directory (mode 700)")
    if not stat.S_ISDIR(info.st_mode):
        raise KeyStoreError(f"the key folder {folder} is not a directory", fix=f"make {folder} a directory (mode 700)")
    if info.st_mode & 0o077:
        raise KeyStoreError(f"the key folder {folder} is open to group or others (mode {oct(info.st_mode & 0o777)})",
                            fix=f"chmod 700 {folder}")


def _check_opened(fd: int, path: Path) -> None:
    """A regular file of mode 0600 or stricter; else close ``fd`` and raise KeyStoreError."""
    info = os.fstat(fd)
    why = None
    if not stat.S_ISREG(info.st_mode):
        why, fix = f"{path} is not a regular file", f"restore {path} from the unit's provisioning"
    elif info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        why, fix = f"{path} is readable by others (mode {oct(info.st_mode & 0o777)})", f"chmod 600 {path}"
    if why:
        os.close(fd)
        raise KeyStoreError(why, fix=fix)


def read_secret(path: Path) -> bytes:
    """The bytes of a key file: regular, not a symlink, 0600 or stricter, 1..MAX_KEY_BYTES; never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyStoreError(f"no key at {path}", fix="run `appliance keys init` on this unit") from None
    except OSError as exc:  # ELOOP: a symlink; EACCES: not ours
        why = "is a symlink" if exc.errno == errno.ELOOP else f"cannot be read: {exc.strerror}"
        raise KeyStoreError(f"{path} {why}", fix=f"restore {path} as a regular 0600 file of this unit") from None
    _check_opened(fd, path)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_KEY_BYTES + 1)
    if not data or len(data) > MAX_KEY_BYTES:
        raise KeyStoreError(f"{path} is {'empty' if not data else 'too large'} for a key file",
                            fix=f"restore {path} from the unit's provisioning, or re-provision the unit")
    return data


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
        if self.root.is_symlink():
            raise KeyStoreError(f"the key folder {self.root} is a symlink", fix=f"make {self.root} a real directory")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write_secret(self.root / SIGNING_FILE, pem)
        _write_secret(self.root / AGE_FILE, (str(pyrage.x25519.Identity.generate()) + "\n").encode())

    def _read(self, name: str) -> bytes:
        check_private_dir(self.root)
        path = self.root / name
        if path.parent != self.root:
            check_private_dir(path.parent)
        return read_secret(path)

    def signing_key(self) -> Ed25519PrivateKey:
        """The unit's Ed25519 private key."""
        path = self.root / SIGNING_FILE
        try:
            key = serialization.load_pem_private_key(self._read(SIGNING_FILE), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyStoreError(f"{path} is not a readable PEM private key (damaged, truncated or replaced)",
                                fix="restore it from the unit's provisioning, or re-provision the unit") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{path} is not an Ed25519 key", fix="re-provision the unit's keys")
        return key

    def verify_key(self) -> Ed25519PublicKey:
        """The unit's Ed25519 public key."""
        return self.signing_key().public_key()

    def _identity(self, name: str) -> str:
        """An age identity file's text, checked to parse as an X25519 identity."""
        try:
            text = self._read(name).decode("ascii").strip()
            pyrage.x25519.Identity.from_str(text)
        except (UnicodeDecodeError, pyrage.IdentityError):
            raise KeyStoreError(f"{self.root / name} is not an age X25519 identity (damaged, truncated or "
                                "replaced)", fix="restore it from the unit's provisioning, or re-provision "
                                                 "the unit") from None
        return text

    def age_identity(self) -> str:
        """The unit's age identity string."""
        return self._identity(AGE_FILE)

    def age_recipient(self) -> str:
        """The unit's age recipient string (give this to the back office)."""
        return str(pyrage.x25519.Identity.from_str(self.age_identity()).to_public())

    def signing_public_raw(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return self.verify_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def _deployment_path(self, name: str) -> Path:
        if not _DEPLOYMENT_NAME.fullmatch(name):
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
        return self._identity(f"{DEPLOYMENT_DIR}/{self._deployment_path(name).name}")

    def destroy_deployment_identity(self, name: str) -> bool:
        """Overwrite and delete one deployment's key; False when it was already gone."""
        path = self._deployment_path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:  # a symlink, FIFO or directory in its place: no key to overwrite, only the name
            fd = None
        if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
        elif fd is not None:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"\x00" * max(os.fstat(fd).st_size, 128))
                fh.flush()
                os.fsync(fh.fileno())
        try:
            path.unlink()
        except OSError as exc:
            raise KeyStoreError(f"cannot delete {path}: {exc.strerror}", fix=f"remove {path} by hand") from None
        return True

    def deployment_names(self) -> list[str]:
        """Names of the deployment keys present (for the purge sweep and status)."""
        folder = self.root / DEPLOYMENT_DIR
        return sorted(p.stem for p in folder.glob("*.key")) if folder.is_dir() else []


def open_store(root: Path) -> FileKeyStore:
    """Backend entry point used by :func:`appliance.keystore.open_keystore`."""
    return FileKeyStore(root)
