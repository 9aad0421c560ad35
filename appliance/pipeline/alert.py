"""The alert: what leaves the pipeline when a track matches a watchlist subject.

``kind`` is "alert" (an alarm) or "repeat_sighting": the subject was alerted on this
camera within ``[match] repeat_window_s``; ``original_alert_id`` names that alert.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field

from ..clock import utc_text


@dataclass
class Alert:
    """One alert (or repeat sighting) per track and subject. Carries the matched face crop only."""

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
    kind: str = "alert"
    original_alert_id: str = ""
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: utc_text(digits=3))

    def summary(self) -> dict:
        """The alert without image bytes (for stdout, logs and the audit entry)."""
        data = asdict(self)
        data.pop("face_jpeg")
        data.pop("reference_jpeg")
        data.pop("capture_t_mono")
        data["score"] = round(self.score, 4)
        return data
