"""The alert: what leaves the pipeline when a track matches a watchlist subject."""
from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


@dataclass
class Alert:
    """One alert per track and subject. Carries the matched face crop only."""

    unit: str
    camera: str
    deployment_id: str
    subject_ref: str
    category: str
    score: float
    threshold: float
    model_id: str
    track_id: int
    frame_seq: int
    quality: dict
    capture_t_mono: float
    face_jpeg: bytes = field(repr=False)
    reference_jpeg: bytes = field(default=b"", repr=False)
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))

    def summary(self) -> dict:
        """The alert without image bytes (for stdout, logs and the audit entry)."""
        data = asdict(self)
        data.pop("face_jpeg")
        data.pop("reference_jpeg")
        data.pop("capture_t_mono")
        data["score"] = round(self.score, 4)
        return data

    def to_dict(self) -> dict:
        """The alert with images as base64 (for the MQTT payload)."""
        data = self.summary()
        data["face_jpeg_b64"] = base64.b64encode(self.face_jpeg).decode()
        data["reference_jpeg_b64"] = base64.b64encode(self.reference_jpeg).decode()
        return data
