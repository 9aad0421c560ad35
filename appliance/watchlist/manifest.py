"""The signed manifest of a watchlist bundle: canonical JSON, strictly parsed.

The manifest is readable without decryption (``appliance watchlist inspect``);
it carries no entry and no biometric, only what the unit must check before it
decrypts: who approved which operation, when, for which model and which unit.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone

from ..audit.events import ID as _OFFICER
from ..audit.events import loads_strict
from ..errors import WatchlistError

FORMAT = "lfr-watchlist/2"  # 2: a bundle carries each entry's embedding for one or more models
MAX_MODELS = 8
MAX_MANIFEST_BYTES = 64 * 1024
MAX_BUNDLE_VERSION = 2 ** 31 - 1
MAX_ENTRIES = 10_000_000
MAX_CIPHERTEXT_BYTES = 2 * 1024 ** 3   # the largest [watchlist] max_bundle_bytes
# fullmatch everywhere: "$" in re.match also accepts a trailing newline
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_FIX = "ask the back office for a fresh bundle built with `appliance watchlist build`"


def format_time(moment: datetime) -> str:
    """UTC timestamp in the manifest's one accepted form, e.g. 2026-11-28T08:00:00Z."""
    return moment.astimezone(timezone.utc).strftime(_TIME)


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) into an aware datetime."""
    try:
        if not _TIME_TEXT.fullmatch(text):
            raise ValueError(text)
        return datetime.strptime(text, _TIME).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        raise WatchlistError(f"{what} {ascii(text)[:40]} is not a UTC time like 2026-11-28T08:00:00Z",
                             fix="write times in UTC as YYYY-MM-DDTHH:MM:SSZ") from None


@dataclass(frozen=True)
class Manifest:
    """What the authority signs. Field order is irrelevant: the JSON is canonical."""

    deployment_id: str
    bundle_version: int
    authorising_officer: str
    not_before: str
    not_after: str
    models: tuple  # ({"model_id": str, "embedding_dim": int}, ...): every model the bundle carries
    entry_count: int
    payload_sha256: str
    ciphertext_sha256: str
    ciphertext_bytes: int
    recipient_fingerprint: str
    authority_key: str
    created: str
    format: str = FORMAT

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no spaces, UTF-8."""
        return canonical_json(asdict(self))

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The ids of the embedding models the bundle carries, in payload order."""
        return tuple(m["model_id"] for m in self.models)

    def dim_of(self, model_id: str) -> int | None:
        """The embedding dimension of ``model_id`` in this bundle, or None if it is not carried."""
        return next((m["embedding_dim"] for m in self.models if m["model_id"] == model_id), None)

    def window(self) -> tuple[datetime, datetime]:
        """(not_before, not_after) as aware datetimes."""
        return parse_time(self.not_before, "not_before"), parse_time(self.not_after, "not_after")

    def summary(self) -> dict:
        """The manifest as a plain dict (for inspect, status and audit events)."""
        return asdict(self)


def canonical_json(value: dict) -> bytes:
    """The one byte form that is signed and hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _refuse(reason: str) -> WatchlistError:
    return WatchlistError(f"manifest refused: {reason}", fix=_FIX)


def _check_types(data: dict) -> None:
    for f in fields(Manifest):
        want = {"int": int, "tuple": list}.get(f.type, str)
        value = data[f.name]
        if type(value) is not want:
            raise _refuse(f"'{f.name}' must be {'list' if want is list else want.__name__}")


def _check_models(models: tuple) -> None:
    """1..MAX_MODELS entries of exactly {model_id, embedding_dim}, ids unique."""
    if not 1 <= len(models) <= MAX_MODELS:
        raise _refuse(f"'models' must list 1..{MAX_MODELS} embedding models")
    for m in models:
        if type(m) is not dict or set(m) != {"model_id", "embedding_dim"} or type(m["model_id"]) is not str \
                or type(m["embedding_dim"]) is not int:
            raise _refuse("each of 'models' must be exactly {\"model_id\": text, \"embedding_dim\": integer}")
        if not _OFFICER.fullmatch(m["model_id"]) or not 1 <= m["embedding_dim"] <= 4096:
            raise _refuse("a model id must be an identifier and its embedding_dim lie in 1..4096")
    if len({m["model_id"] for m in models}) != len(models):
        raise _refuse("'models' names a model twice")


_BOUNDS = {"bundle_version": (1, MAX_BUNDLE_VERSION), "entry_count": (0, MAX_ENTRIES),
           "ciphertext_bytes": (1, MAX_CIPHERTEXT_BYTES)}


def _check_values(m: Manifest) -> None:
    if m.format != FORMAT:
        raise _refuse(f"format {ascii(m.format)[:40]} is not {FORMAT}; this firmware reads only {FORMAT}")
    if not _ID.fullmatch(m.deployment_id):
        raise _refuse("deployment_id must be 1-64 letters, digits, '.', '_' or '-'")
    if not _OFFICER.fullmatch(m.authorising_officer):
        raise _refuse("authorising_officer must be an identifier (1-64 of A-Z a-z 0-9 . _ : @ / + -),"
                      " e.g. an officer's collar number 'PS-4521'")
    _check_models(m.models)
    for name in ("payload_sha256", "ciphertext_sha256", "recipient_fingerprint", "authority_key"):
        if not _HEX64.fullmatch(getattr(m, name)):
            raise _refuse(f"'{name}' must be 64 lowercase hex digits")
    for name, (low, high) in _BOUNDS.items():
        if not low <= getattr(m, name) <= high:
            raise _refuse(f"'{name}' must lie in {low}..{high}")
    start, end = m.window()
    parse_time(m.created, "created")
    if end <= start:
        raise _refuse(f"not_after {m.not_after} is not after not_before {m.not_before}")


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and validate manifest bytes: canonical JSON with exactly the known keys."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _refuse(f"manifest is {len(raw)} bytes, over {MAX_MANIFEST_BYTES}")
    try:
        data = loads_strict(bytes(raw), MAX_MANIFEST_BYTES)
    except ValueError as exc:  # bad UTF-8, huge numbers, deep nesting, lone surrogates, duplicate keys
        raise _refuse(f"manifest is not plain UTF-8 JSON (altered or not a bundle): {exc}") from None
    if not isinstance(data, dict):
        raise _refuse("manifest is not a JSON object")
    known = {f.name for f in fields(Manifest)}
    if set(data) != known:
        extra, missing = sorted(set(data) - known), sorted(known - set(data))
        raise _refuse(f"unknown keys {ascii(extra)[:200]}, missing keys {missing}")
    if canonical_json(data) != raw:
        raise _refuse("manifest bytes are not canonical JSON (altered after signing)")
    _check_types(data)
    manifest = Manifest(**{**data, "models": tuple(data["models"])})
    _check_values(manifest)
    return manifest
