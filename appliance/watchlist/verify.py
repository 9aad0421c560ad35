"""Verify a bundle on the unit and open it into memory.

Checks run cheapest first and nothing is decrypted until every check on the
signed manifest has passed: size bound, container, manifest, trusted signer,
signature, validity window, model id, recipient (this unit), then the
ciphertext hash, age decryption, the plaintext hash and the payload itself.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..authority import key_fingerprint
from ..errors import WatchlistError
from ..pipeline.match import Watchlist
from . import payload
from .container import Bundle
from .crypto import decrypt_with, recipient_fingerprint, reseal_to, signature_valid


@dataclass(frozen=True)
class UnitTrust:
    """What the unit checks a bundle against."""

    authorities: tuple[Ed25519PublicKey, ...]
    recipient: str
    model_id: str


def check_signature(bundle: Bundle, authorities: tuple[Ed25519PublicKey, ...]) -> None:
    """The manifest must be signed by one of the trusted authority keys."""
    trusted = {key_fingerprint(k): k for k in authorities}
    key = trusted.get(bundle.manifest.authority_key)
    if key is None:
        raise WatchlistError(
            f"bundle is signed by authority key {bundle.manifest.authority_key[:16]}..., "
            "which this unit does not trust",
            fix="add the authority's public key (`appliance authority show`) to "
                "[watchlist] trusted_authorities, or get a bundle signed by a trusted authority")
    if not signature_valid(key, bundle.manifest_bytes, bundle.signature):
        raise WatchlistError("manifest signature does not verify: the manifest was altered or re-signed",
                             fix="get an unaltered bundle from the back office")


def check_window(bundle: Bundle, now: datetime) -> None:
    """``now`` must lie inside [not_before, not_after)."""
    start, end = bundle.manifest.window()
    if now < start:
        raise WatchlistError(f"bundle is not yet valid: its window starts at {bundle.manifest.not_before}",
                             fix="start the deployment inside its authorised window (check the unit clock)")
    if now >= end:
        raise WatchlistError(f"bundle has expired: its window ended at {bundle.manifest.not_after}",
                             fix="an expired watchlist may not be used; ask for a new authorisation")


def check_unit(bundle: Bundle, trust: UnitTrust) -> None:
    """The bundle must be built for this unit's model and recipient."""
    manifest = bundle.manifest
    if trust.model_id not in manifest.model_ids:
        raise WatchlistError(f"bundle was enrolled with model(s) {', '.join(manifest.model_ids)}; this unit runs "
                             f"{trust.model_id} (embeddings of different models are incompatible)",
                             fix="rebuild the bundle with the unit's model too (`appliance watchlist build --models ...`)")
    if manifest.recipient_fingerprint != recipient_fingerprint(trust.recipient):
        raise WatchlistError("bundle was built for another unit (recipient fingerprint "
                             f"{manifest.recipient_fingerprint[:16]}..., this unit is "
                             f"{recipient_fingerprint(trust.recipient)[:16]}...)",
                             fix="rebuild it for this unit's recipient from `appliance keys show`")


def verify_manifest(bundle: Bundle, trust: UnitTrust, now: datetime) -> None:
    """Every check that needs no decryption."""
    check_signature(bundle, trust.authorities)
    check_window(bundle, now)
    check_unit(bundle, trust)


def check_ciphertext_bytes(bundle: Bundle) -> None:
    """The ciphertext must have the signed length and hash (truncation is named as such)."""
    manifest, size = bundle.manifest, len(bundle.ciphertext)
    if size < manifest.ciphertext_bytes:
        raise WatchlistError(f"bundle is truncated: its payload is {size} bytes, the signed manifest says "
                             f"{manifest.ciphertext_bytes}", fix="copy the whole bundle again from the back office")
    if size > manifest.ciphertext_bytes:
        raise WatchlistError(f"bundle has {size - manifest.ciphertext_bytes} bytes more payload than signed "
                             "(appended data)", fix="copy the bundle again from the back office")
    if (bundle.ciphertext_sha256 or hashlib.sha256(bundle.ciphertext).hexdigest()) != manifest.ciphertext_sha256:
        raise WatchlistError("bundle payload was altered (ciphertext hash differs from the signed manifest)",
                             fix="copy the bundle again from the back office")


def open_payload(bundle: Bundle, identities: list[str], model_id: str, check_ciphertext: bool = True,
                 reseal: str | None = None) -> tuple[Watchlist, bytes | None]:
    """Decrypt and decode the payload's ``model_id`` vectors into memory; nothing is written anywhere.

    ``check_ciphertext`` is False only for the unit's own re-encrypted copy, whose
    ciphertext differs from the signed one; the signed plaintext hash still binds it.
    With ``reseal`` (an age recipient) the verified plaintext is also encrypted to
    it before being wiped, and that ciphertext is returned beside the Watchlist.
    """
    manifest = bundle.manifest
    if check_ciphertext:
        check_ciphertext_bytes(bundle)
    plaintext = decrypt_with(identities, bundle.ciphertext)
    try:
        watchlist = _decode_checked(plaintext, manifest.payload_sha256, manifest.deployment_id, model_id)
        _check_decoded(watchlist, bundle)
        resealed = reseal_to(reseal, plaintext) if reseal else None
    finally:
        plaintext[:] = bytes(len(plaintext))
    return watchlist, resealed


def _decode_checked(plaintext: bytearray, expected_sha256: str, deployment_id: str, model_id: str) -> Watchlist:
    """Decode while the plaintext hash runs in a thread; refuse (and wipe) on a hash mismatch.

    Decoding only parses into private buffers; nothing is used until the hash agrees.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(plaintext).hexdigest())
        watchlist, refusal = None, None
        try:
            watchlist = payload.decode(plaintext, deployment_id, model_id)
        except WatchlistError as exc:
            refusal = exc
        matches = digest.result() == expected_sha256
    if not matches:
        if watchlist is not None:
            watchlist.purge()
        raise WatchlistError("decrypted payload differs from the signed manifest (payload hash)",
                             fix="get an unaltered bundle from the back office")
    if refusal is not None:
        raise refusal
    return watchlist


def _check_decoded(watchlist: Watchlist, bundle: Bundle) -> None:
    manifest = bundle.manifest
    problem = None
    if len(watchlist) != manifest.entry_count:
        problem = f"payload holds {len(watchlist)} entries, the manifest says {manifest.entry_count}"
    elif manifest.dim_of(watchlist.model_id) is None:
        problem = f"payload model {watchlist.model_id} is not in the manifest"
    elif watchlist.matrix.shape[1] != manifest.dim_of(watchlist.model_id):
        problem = "payload embedding dimension differs from the manifest"
    if problem:
        watchlist.purge()
        raise WatchlistError(f"payload refused: {problem}", fix="rebuild the bundle")
