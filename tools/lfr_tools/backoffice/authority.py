"""Back-office authority keys: create and load the Ed25519 key that signs watchlist bundles.

Runs off the device. The public half goes into each unit's ``[watchlist]
trusted_authorities`` (see :mod:`appliance.authority`).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.authority import PREFIX, key_fingerprint, parse_public, public_raw, public_string  # noqa: F401
from appliance.errors import KeyStoreError

PRIVATE_FILE = "authority-ed25519.pem"
PUBLIC_FILE = "authority-ed25519.pub"


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
