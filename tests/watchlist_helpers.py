"""Shared helpers for the watchlist, deployment and key tests (real keys, real crypto, real SQLite)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from appliance.authority import parse_public
from lfr_tools.backoffice.authority import init_authority, load_authority
from appliance.keystore.file import FileKeyStore
from appliance.watchlist.deployment import Deployment
from appliance.watchlist.manifest import format_time
from appliance.watchlist.payload import Entry
from appliance.watchlist import payload
from lfr_tools.backoffice.seal import Operation, seal_entries, seal_payload
from appliance.watchlist.verify import UnitTrust

MODEL_ID = "mobilefacenet@d8ba40c0127f"
DIM = 192
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def synthetic_thumbnail(seed: int, size: int = 96) -> bytes:
    """A small, unique JPEG (smooth gradient plus seeded noise), about the engine's thumbnail size."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size, dtype=np.float32)
    image = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1)
    image += rng.normal(0, 12, image.shape)
    ok, buf = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def synthetic_entries(count: int, seed: int = 0, dim: int = DIM, refs: list[str] | None = None) -> list[Entry]:
    """Entries with random unit embeddings and unique thumbnails (timing and format tests)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(count, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    refs = refs or [f"WL-{seed:03d}-{i:05d}" for i in range(count)]
    return [Entry(subject_ref=refs[i], category="wanted:burglary", image_source="custody:EX-1",
                  capture_date="2026-01-15", review_by="2027-01-15", embeddings={MODEL_ID: matrix[i]},
                  thumbnail=synthetic_thumbnail(seed * 100_000 + i)) for i in range(count)]


def window(start_s: float = -3600, end_s: float = 3600) -> tuple[str, str]:
    """(not_before, not_after) relative to now, in seconds."""
    now = datetime.now(timezone.utc)
    return format_time(now + timedelta(seconds=start_s)), format_time(now + timedelta(seconds=end_s))


@dataclass
class Unit:
    """One van unit: its data dir, key store, trusted authority and a recording audit sink."""

    data_dir: Path
    keys: FileKeyStore
    authority_dir: Path
    events: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def recipient(self) -> str:
        """The unit's age recipient."""
        return self.keys.age_recipient()

    def audit(self, event: str, fields: dict) -> None:
        """Audit sink that records events (and checks them against the audit schema when present)."""
        try:
            from appliance.audit.events import validate_payload
        except ImportError:
            validate_payload = None
        if validate_payload is not None:
            validate_payload(event, fields)
        self.events.append((event, fields))

    def deployment(self, model_id: str = MODEL_ID, max_bundle_bytes: int = 64 * 1024 * 1024,
                   poll_seconds: float = 0.2, **kwargs) -> Deployment:
        """A Deployment for this unit trusting its authority."""
        authority = parse_public((self.authority_dir / "authority-ed25519.pub").read_text().strip())
        trust = UnitTrust((authority,), self.recipient, model_id)
        return Deployment(self.data_dir, self.keys, trust, max_bundle_bytes=max_bundle_bytes,
                          audit=self.audit, poll_seconds=poll_seconds, **kwargs)

    def event_types(self) -> list[str]:
        """The audit event types recorded so far, in order."""
        return [name for name, _ in self.events]


def make_unit(root: Path, name: str = "unit") -> Unit:
    """Provision a unit (keys 0600) and a back-office authority under ``root``."""
    keys = FileKeyStore(root / name / "data" / "keys")
    keys.init()
    authority_dir = root / f"{name}-authority"
    init_authority(authority_dir)
    return Unit(root / name / "data", keys, authority_dir)


def seal(unit_or_recipient: Unit | str, authority_dir: Path, entries: list[Entry], *,
         deployment_id: str = "OP-TEST-1", version: int = 1, win: tuple[str, str] | None = None,
         model_id: str = MODEL_ID, checked: bool = True) -> bytes:
    """Seal entries into bundle bytes for a unit (or a raw recipient string).

    ``checked=False`` skips the back office's value checks and signs whatever it is given,
    as a faulty or compromised back office would: what the unit must then refuse itself.
    """
    recipient = unit_or_recipient if isinstance(unit_or_recipient, str) else unit_or_recipient.recipient
    start, end = win or window()
    operation = Operation(deployment_id, "PS-4521", start, end, recipient, version)
    entries = [e if model_id in e.embeddings else replace(e, embeddings={model_id: e.embedding}) for e in entries]
    if not checked:  # the unit's own checks are what a test of hostile values exercises
        models = [(model_id, DIM)]
        return seal_payload(operation, payload.encode(entries, models), len(entries), models,
                            load_authority(authority_dir))
    return seal_entries(operation, entries, load_authority(authority_dir))


def write_bundle(folder: Path, data: bytes, name: str = "bundle.lfrwl") -> Path:
    """Write bundle bytes to a file and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path
