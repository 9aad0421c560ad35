"""Alert images at rest: AES-256-GCM under one key per unit and deployment, shredded at its end.

The console must keep an alert nobody has adjudicated across a restart (docs/console.md), so
its two JPEGs are written to the state directory, encrypted. Each (unit, deployment) has its
own random key in a 0600 file; when the deployment ends (its record arrives) the key file is
overwritten and deleted, so any copy of the ciphertext left on the flash (SQLite free pages,
wear-levelled blocks, backups) can no longer be read: crypto-shredding, as the unit does with
its deployment watchlist keys.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import KeyStoreError


class Vault:
    """Per-deployment data keys under <state_dir>/keys/deployments/."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "keys" / "deployments"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)

    def _path(self, unit: str, deployment: str) -> Path:
        name = hashlib.sha256(f"{unit}\n{deployment}".encode()).hexdigest()[:32]
        return self.root / f"{name}.key"

    def _key(self, unit: str, deployment: str, create: bool) -> bytes | None:
        path = self._path(unit, deployment)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
        key = AESGCM.generate_key(256)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        return key

    def seal(self, unit: str, deployment: str, alert_id: str, data: bytes) -> bytes:
        """Encrypt ``data`` for one alert (nonce || ciphertext; the alert id is authenticated)."""
        nonce = os.urandom(12)
        key = self._key(unit, deployment, create=True)
        return nonce + AESGCM(key).encrypt(nonce, data, alert_id.encode())

    def open(self, unit: str, deployment: str, alert_id: str, sealed: bytes) -> bytes | None:
        """Decrypt one alert's images; None once the deployment's key is shredded."""
        key = self._key(unit, deployment, create=False)
        if key is None:
            return None
        try:
            return AESGCM(key).decrypt(sealed[:12], sealed[12:], alert_id.encode())
        except InvalidTag:
            raise KeyStoreError(f"alert {alert_id}: images do not decrypt (altered on disk)",
                                fix="the state directory was tampered with; end the deployment") from None

    def shred(self, unit: str, deployment: str) -> bool:
        """Overwrite and delete a deployment's key; False when it was already gone."""
        path = self._path(unit, deployment)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\x00" * 64)
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
        return True
