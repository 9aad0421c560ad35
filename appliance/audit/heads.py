"""Signed tree heads: the unit's Ed25519 signature over (log, size, root, time, previous head).

Standard library plus ``cryptography`` only: the offline verifier imports this.

A head's body is canonical JSON::

    {"head_no": k, "log": <log id>, "prev": <SHA-256 hex of head k-1's body, "" for k = 0>,
     "reason": "entries" | "interval" | "shutdown" | "export" | "created",
     "root": <base64 Merkle root>, "time": <UTC ISO 8601>, "tree_size": n,
     "unit": <unit id>, "v": 1}

The signature covers ``SIGNING_CONTEXT + body`` so a head can never be confused
with another signed object of the unit (an alert, a status message).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .events import ID, MAX_COUNT, TIME, canonical, is_count, loads_strict

SIGNING_CONTEXT = b"lfr-audit-tree-head/v1\n"
HEAD_VERSION = 1
HEAD_KEYS = frozenset({"v", "log", "unit", "head_no", "tree_size", "root", "time", "prev", "reason"})
HEAD_REASONS = frozenset({"created", "entries", "interval", "recovery", "shutdown", "export"})
MAX_HEAD_BYTES = 1024
_LOG = re.compile(r"[0-9a-f]{32}")
_PREV = re.compile(r"(|[0-9a-f]{64})")


class HeadError(ValueError):
    """A tree head is malformed or its signature does not verify."""


def public_raw(key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def log_id(key: Ed25519PublicKey) -> str:
    """The log's identity: first 16 bytes (hex) of SHA-256 over the unit's raw public key."""
    return hashlib.sha256(public_raw(key)).hexdigest()[:32]


def fingerprint(key: Ed25519PublicKey) -> str:
    """Short fingerprint shown to people (same form as the key store's)."""
    digest = hashlib.sha256(public_raw(key)).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, 32, 4))


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text, base64 of the raw 32 bytes, or 64 hex digits."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise HeadError("the PEM key is not an Ed25519 public key")
            return key
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise HeadError(f"not an Ed25519 public key (PEM, base64 or hex): {exc}") from None


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head as stored and exported: the exact body bytes and the signature."""

    body: bytes
    signature: bytes

    @property
    def fields(self) -> dict:
        """The parsed and checked body (HeadError when it is not a tree head body)."""
        return check_fields(self)

    def digest(self) -> str:
        """SHA-256 hex of the body: what the next head's ``prev`` names."""
        return hashlib.sha256(self.body).hexdigest()

    def to_json(self) -> dict:
        """Export form: {"body": <canonical JSON text>, "signature": <base64>}."""
        return {"body": self.body.decode("utf-8"), "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_json(cls, obj: object) -> "TreeHead":
        """Parse the export form; raise HeadError when it is not one."""
        if not isinstance(obj, dict) or set(obj) != {"body", "signature"}:
            raise HeadError("a tree head must be {\"body\": ..., \"signature\": ...}")
        if not isinstance(obj["body"], str) or not isinstance(obj["signature"], str):
            raise HeadError("a tree head's body and signature must be text")
        try:
            head = cls(obj["body"].encode("utf-8"), binascii.a2b_base64(obj["signature"], strict_mode=True))
        except ValueError as exc:
            raise HeadError(f"malformed tree head: {exc}") from None
        if len(head.signature) != 64:
            raise HeadError("a tree head's signature is not 64 bytes (Ed25519)")
        check_fields(head)
        return head


_TEXT_FIELDS = {"log": (_LOG, "a log id (32 hex digits)"), "unit": (ID, "an identifier"),
                "time": (TIME, "an ISO 8601 time"), "prev": (_PREV, "empty or 64 hex digits"),
                "reason": (re.compile("|".join(sorted(HEAD_REASONS))), "a head reason")}


def check_fields(head: TreeHead) -> dict:
    """Parse and check the body's fields (every one typed and bounded); raise HeadError naming what is wrong."""
    try:
        fields = loads_strict(head.body, MAX_HEAD_BYTES, canonical_checked=True)
    except ValueError as exc:
        raise HeadError(f"head body is not a tree head: {exc}") from None
    if not isinstance(fields, dict) or set(fields) != HEAD_KEYS:
        raise HeadError("head body does not have the tree head fields")
    if type(fields["v"]) is not int or fields["v"] != HEAD_VERSION:
        raise HeadError(f"head version {ascii(fields['v'])[:20]} unsupported")
    for name in ("head_no", "tree_size"):
        if not is_count(fields[name]):
            raise HeadError(f"head field {name} must be a non-negative integer, at most {MAX_COUNT}")
    for name, (pattern, what) in _TEXT_FIELDS.items():
        if not isinstance(fields[name], str) or not pattern.fullmatch(fields[name]):
            raise HeadError(f"head field {name} must be {what}")
    if len(root_of(fields)) != 32:
        raise HeadError("head root is not 32 bytes")
    if canonical(fields) != head.body:
        raise HeadError("head body is not the canonical JSON the unit signs")
    return fields


def root_of(fields: dict) -> bytes:
    """The Merkle root bytes named by a head body."""
    try:
        return binascii.a2b_base64(fields["root"], strict_mode=True)
    except (ValueError, TypeError):
        raise HeadError("head root is not base64") from None


def sign_head(key: Ed25519PrivateKey, *, unit: str, head_no: int, tree_size: int, root: bytes,
              time: str, prev: str, reason: str) -> TreeHead:
    """Build and sign a tree head with the unit key (only a body every verifier accepts is signed)."""
    if reason not in HEAD_REASONS:
        raise HeadError(f"head reason {reason!r} is not one of {', '.join(sorted(HEAD_REASONS))}")
    body = canonical({"v": HEAD_VERSION, "log": log_id(key.public_key()), "unit": unit,
                      "head_no": head_no, "tree_size": tree_size,
                      "root": base64.b64encode(root).decode(), "time": time, "prev": prev,
                      "reason": reason})
    head = TreeHead(body, key.sign(SIGNING_CONTEXT + body))
    check_fields(head)  # e.g. a unit id that is not an identifier: refused here, not by every auditor later
    return head


def verify_head(head: TreeHead, key: Ed25519PublicKey) -> dict:
    """Return the head's fields if its signature verifies with ``key``; raise HeadError otherwise."""
    fields = check_fields(head)
    try:
        key.verify(head.signature, SIGNING_CONTEXT + head.body)
    except InvalidSignature:
        raise HeadError(f"signature does not verify with unit key {fingerprint(key)}") from None
    if fields["log"] != log_id(key):
        raise HeadError(f"head names log {fields['log']}, not this unit's log {log_id(key)}")
    return fields
