"""Seal a bundle (back office): encode the payload, encrypt it to the unit, sign the manifest."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.authority import key_fingerprint
from appliance.errors import InputError
from appliance.watchlist import container, payload
from appliance.watchlist.crypto import encrypt_to, recipient_fingerprint, sign_manifest
from appliance.watchlist.manifest import Manifest, format_time, parse_manifest


@dataclass(frozen=True)
class Operation:
    """What the authorising officer approved: one deployment, one window, one unit."""

    deployment_id: str
    authorising_officer: str
    not_before: str
    not_after: str
    recipient: str
    bundle_version: int = 1


def seal_payload(operation: Operation, plaintext: bytes, entry_count: int, models: list[tuple[str, int]],
                 authority: Ed25519PrivateKey, created: datetime | None = None) -> bytes:
    """Encrypt ``plaintext`` to the unit and sign a manifest binding it; return bundle bytes."""
    ciphertext = encrypt_to(operation.recipient, plaintext)
    manifest = Manifest(
        deployment_id=operation.deployment_id, bundle_version=operation.bundle_version,
        authorising_officer=operation.authorising_officer,
        not_before=operation.not_before, not_after=operation.not_after,
        models=tuple({"model_id": m, "embedding_dim": d} for m, d in models), entry_count=entry_count,
        payload_sha256=hashlib.sha256(plaintext).hexdigest(),
        ciphertext_sha256=hashlib.sha256(ciphertext).hexdigest(), ciphertext_bytes=len(ciphertext),
        recipient_fingerprint=recipient_fingerprint(operation.recipient),
        authority_key=key_fingerprint(authority.public_key()),
        created=format_time(created or datetime.now(timezone.utc)))
    manifest_bytes = manifest.to_bytes()
    parse_manifest(manifest_bytes)  # the same checks the unit applies, so a bad bundle fails here first
    return container.pack(manifest_bytes, sign_manifest(authority, manifest_bytes), ciphertext)


def entry_models(entries: list[payload.Entry]) -> list[tuple[str, int]]:
    """(model id, dimension) of every model the entries carry, in the first entry's order."""
    return [(m, int(v.shape[0])) for m, v in entries[0].embeddings.items()] if entries else []


def seal_entries(operation: Operation, entries: list[payload.Entry], authority: Ed25519PrivateKey,
                 models: list[tuple[str, int]] | None = None) -> bytes:
    """Encode enrolled entries with their vectors of each model and seal them into bundle bytes;
    refuse what the unit would refuse."""
    problem = payload.check_entries(entries)
    if problem:
        raise InputError(f"watchlist refused before sealing: {problem}",
                         fix="fix the entry (identifiers, dates, embedding, thumbnail) and build again")
    models = models or entry_models(entries)
    plaintext = payload.encode(entries, models)
    return seal_payload(operation, plaintext, len(entries), models, authority)
