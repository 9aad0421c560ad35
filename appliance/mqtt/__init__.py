"""Alerts to the van over MQTT: signed payloads, a durable SQLite outbox, adjudication intake.

Only alerts, status, heartbeats and deployment records leave the unit (lfr/v1/<unit>/...);
adjudications signed by a pinned console key are the one thing it takes in. See docs/mqtt.md for topics, payloads and the signature.
"""
from __future__ import annotations

from .adjudication import AdjudicationIntake, Verdict
from .outbox import Outbox, OutboxRow
from .payload import Signer, canonical_bytes, new_alert_id, verify
from .publisher import AlertPublisher
from .topics import adjudication_topic, topic

__all__ = ["AdjudicationIntake", "AlertPublisher", "Outbox", "OutboxRow", "Signer", "Verdict",
           "adjudication_topic", "canonical_bytes", "new_alert_id", "topic", "verify"]
