"""Back-office authority keys: the Ed25519 key that signs watchlist bundles.

The authority key lives off the device (the back office that approves an
operation). A unit trusts the authority public keys listed in its config under
``[watchlist] trusted_authorities`` as strings ``ed25519:<base64 of 32 raw bytes>``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyStoreError

PRIVATE_FILE = "authority-ed25519.pem"
PUBLIC_FILE = "authority-ed25519.pub"
PREFIX = "ed25519:"


def public_raw(key: Ed25519PublicKey) -> bytes:
    """Raw 32-byte form of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_string(key: Ed25519PublicKey) -> str:
    """The config form of an authority public key: ``ed25519:<base64>``."""
    return PREFIX + base64.b64encode(public_raw(key)).decode()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key: names the signer inside a bundle manifest."""
    return hashlib.sha256(public_raw(key)).hexdigest()


def parse_public(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>``; raise KeyStoreError naming the fix."""
    if not text.startswith(PREFIX):
        raise KeyStoreError(f"authority key '{text[:24]}...' does not start with '{PREFIX}'",
                            fix="copy the line printed by `appliance authority show`")
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"authority key '{text[:24]}...' is not 32 bytes of base64",
                            fix="copy the line printed by `appliance authority show`") from None


def init_authority(folder: Path) -> str:
    """Create an authority key pair in ``folder`` (0700, private key 0600); return the public string."""
    folder = Path(folder)
    if (folder / PRIVATE_FILE).exists():
        raise KeyStoreError(f"an authority key already exists in {folder}",
                            fix="keep it, or choose another --dir for a new authority")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(folder / PRIVATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        os.fsync(fh.fileno())
    text = public_string(key.public_key())
    (folder / PUBLIC_FILE).write_text(text + "\n")
    return text


def load_authority(folder: Path) -> Ed25519PrivateKey:
    """Load the authority signing key; refuse a file readable by group or others."""
    path = Path(folder) / PRIVATE_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(f"no authority key at {path}",
                            fix="run `appliance authority init --dir DIR` in the back office") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path} is readable by others (mode {oct(mode & 0o777)})", fix=f"chmod 600 {path}")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{path} is not an Ed25519 key", fix="create one with `appliance authority init`")
    return key
