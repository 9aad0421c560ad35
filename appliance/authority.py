"""Authority public keys as a unit trusts them: the keys that sign watchlist bundles.

The authority's private key lives off the device, in the back office that approves an
operation (``lfr_tools.backoffice.authority`` creates and loads it). A unit trusts the
public keys listed in its config under ``[watchlist] trusted_authorities`` as strings
``ed25519:<base64 of 32 raw bytes>``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import KeyStoreError

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
