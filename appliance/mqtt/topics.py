"""Topic names: everything lives under lfr/v1/<unit>/ (docs/mqtt.md)."""
from __future__ import annotations

KINDS = ("alert", "status", "heartbeat", "adjudication")


def topic(unit: str, kind: str) -> str:
    """The topic of one payload kind for one unit, e.g. lfr/v1/van-dev-01/alert."""
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"lfr/v1/{unit}/{kind}"
