"""Alerts to the van over MQTT: signed payloads, a durable SQLite outbox, adjudication intake.

Only alerts, status and heartbeats leave the unit (lfr/v1/<unit>/...); adjudications are
the one thing it takes in. See docs/mqtt.md for topics, payloads and the signature.
"""
from __future__ import annotations

from .adjudication import AdjudicationIntake, Verdict
from .outbox import Outbox, OutboxRow
from .payload import Signer, canonical_bytes, new_alert_id, verify
from .publisher import AlertPublisher
from .topics import topic

__all__ = ["AdjudicationIntake", "AlertPublisher", "Outbox", "OutboxRow", "Signer", "Verdict",
           "canonical_bytes", "new_alert_id", "topic", "verify"]
