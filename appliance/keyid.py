"""Names of Ed25519 public keys, shared by the key store, MQTT payloads and the console.

Standard library and ``cryptography`` only, so the officers' console can verify unit
payloads and name keys without importing the unit's key store.
"""
from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import KeyStoreError

PREFIX = "ed25519:"


def fingerprint(public_raw: bytes) -> str:
    """Short SHA-256 fingerprint of raw public key bytes: first 16 bytes, hex in groups of 4."""
    digest = hashlib.sha256(public_raw).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def public_raw(key: Ed25519PublicKey) -> bytes:
    """Raw 32-byte form of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The key id carried in signed MQTT payloads: :func:`fingerprint` of the raw key."""
    return fingerprint(public_raw(key))


def public_string(key: Ed25519PublicKey) -> str:
    """The config form of a public key: ``ed25519:<base64 of the 32 raw bytes>``."""
    return PREFIX + base64.b64encode(public_raw(key)).decode()


def parse_public(text: str, what: str = "public key", fix: str = "") -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>``; raise KeyStoreError naming ``what`` and the fix."""
    fix = fix or f"copy the {what} line exactly as its owner printed it"
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise KeyStoreError(f"{what} '{str(text)[:24]}...' does not start with '{PREFIX}'", fix=fix)
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"{what} '{text[:24]}...' is not 32 bytes of base64", fix=fix) from None
