"""The console's own Ed25519 key: signs every adjudication it sends (never the unit's key store).

Kept as a 0600 PEM file in a 0700 folder under the console's state directory, created by
``appliance console keys init`` or at first start. Units pin its public key in
``[mqtt] console_keys`` (``appliance console keys show`` prints the line).
"""
from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import KeyStoreError
from ..clock import utc_text
from ..keyid import key_id, public_string
from ..mqtt.payload import Signer

KEY_FILE = "console-ed25519.pem"


def key_path(state_dir: Path) -> Path:
    """Where the console keeps its signing key."""
    return Path(state_dir) / "keys" / KEY_FILE


def create_key(state_dir: Path) -> Path:
    """Create the console key (0600, folder 0700); refuse to replace an existing one."""
    path = key_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyStoreError(f"a console key already exists at {path}",
                            fix="keep it (units pin it); delete it only to re-provision every unit") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_key(state_dir: Path) -> Ed25519PrivateKey:
    """The console's signing key; refuses a file readable by group or others."""
    path = key_path(state_dir)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(f"no console key at {path}", fix="run `appliance console keys init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"{path} is readable by others (mode {oct(mode & 0o777)})", fix=f"chmod 600 {path}")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{path} is not an Ed25519 key", fix="re-create it with `appliance console keys init`")
    return key


def load_or_create(state_dir: Path) -> Ed25519PrivateKey:
    """The console key, created on first start."""
    if not key_path(state_dir).exists():
        create_key(state_dir)
    return load_key(state_dir)


def describe(key: Ed25519PrivateKey) -> dict:
    """What a technician copies into each unit's ``[mqtt] console_keys``."""
    public = key.public_key()
    return {"console_key": public_string(public), "key_id": key_id(public)}


def sign_adjudication(key: Ed25519PrivateKey, unit: str, alert_id: str, decision: str,
                      officer_ids: list[str], note: str = "", adjudication_id: str | None = None) -> dict:
    """One signed adjudication message for ``unit`` (schema docs/schemas/adjudication.json)."""
    body = {"adjudication_id": adjudication_id or str(uuid.uuid4()), "alert_id": alert_id,
            "decision": decision, "officer_ids": list(officer_ids), "time": utc_text(digits=3)}
    if note:
        body["note"] = note
    return Signer(unit, key).sign("adjudication", body)
