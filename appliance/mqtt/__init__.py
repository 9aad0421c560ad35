"""Alerts to the van over MQTT: signed payloads, a durable SQLite outbox, adjudication intake.

Only alerts, status, heartbeats and deployment records leave the unit (lfr/v1/<unit>/...);
adjudications signed by a pinned console key are the one thing it takes in. See docs/mqtt.md
for topics, payloads and the signature.

The names below load on first use (PEP 562): importing ``appliance.mqtt.payload`` (as the
officers' console does) must not pull in the publisher and with it the unit's configuration.
"""
from __future__ import annotations

import importlib

_WHERE = {"AdjudicationIntake": "adjudication", "Verdict": "adjudication", "Outbox": "outbox",
          "OutboxRow": "outbox", "Signer": "payload", "canonical_bytes": "payload", "new_alert_id": "payload",
          "verify": "payload", "AlertPublisher": "publisher", "adjudication_topic": "topics", "topic": "topics"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
