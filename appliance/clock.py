"""The one wall-clock helper: aware UTC now, and its text forms (RFC 3339 with a Z).

Durations and ordering inside the process use time.monotonic(); wall-clock time appears
only where a person or an auditor reads it (audit entries, MQTT payloads, deployments).
Standard library only (the offline verifier may import it).
"""
from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def utc_text(when: datetime | None = None, digits: int = 6) -> str:
    """``when`` (default: now) as RFC 3339 UTC with ``digits`` (3 or 6) fractional digits and a Z."""
    spec = {3: "milliseconds", 6: "microseconds"}[digits]
    return (when or utc_now()).astimezone(timezone.utc).isoformat(timespec=spec).replace("+00:00", "Z")
