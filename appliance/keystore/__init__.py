"""The unit's key store behind an interface, one file per backend.

Keys: an Ed25519 signing key (signs audit tree heads and alerts) and an X25519
age identity (decrypts watchlist bundles addressed to this unit). The file
backend keeps them 0600 under <data_dir>/keys; TPM2 or a secure element can
follow as further backends registered here.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import KeyStoreError

KEYSTORES: dict[str, str] = {
    "file": "appliance.keystore.file",
}


class KeyStore(Protocol):
    """What the pipeline, audit log and watchlist loader need from the key store."""

    def signing_key(self) -> Ed25519PrivateKey:
        """The unit's Ed25519 private key."""
        ...

    def verify_key(self) -> Ed25519PublicKey:
        """The unit's Ed25519 public key."""
        ...

    def age_identity(self) -> str:
        """The unit's age X25519 identity string (AGE-SECRET-KEY-1...)."""
        ...

    def age_recipient(self) -> str:
        """The unit's age recipient string (age1...)."""
        ...


def open_keystore(kind: str, data_dir: Path) -> KeyStore:
    """Open the key store backend ``kind`` rooted at ``data_dir``."""
    if kind not in KEYSTORES:
        raise KeyStoreError(f"unknown key store '{kind}'", fix=f"choose one of {', '.join(KEYSTORES)}")
    return importlib.import_module(KEYSTORES[kind]).open_store(Path(data_dir) / "keys")


def unit_keystore(cfg) -> KeyStore:
    """The key store a config names ([keystore] backend, under [unit] data_dir).

    The running unit opens it once (appliance.unit.Unit) and hands it to every part;
    commands that run beside the service (audit export, keys show) open it here.
    """
    from ..paths import resolve  # noqa: PLC0415

    return open_keystore(cfg.keystore.backend, resolve(cfg.unit.data_dir))
