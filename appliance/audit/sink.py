"""Connects the unit to the audit log: payloads of alerts, counters and faults.

``alert_payload`` is what the durable commit (appliance/sinks.py) writes for an
alert. ``AuditSink.event`` is the runner's and supervisor's event hook: counters
(cumulative in the runner) become one per-period ``counters`` event; faults map
onto the fault kinds of the schema.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .. import __version__
from ..clock import utc_text
from ..config import Config, config_hash, resolve
from ..keystore import KeyStore
from .events import FAULT_KINDS
from .log import AuditLog

_COUNTER_NAMES = {"faces_seen": "faces_seen", "non_matches_discarded": "non_matches_discarded",
                  "frames_dropped": "frames_dropped", "frames": "frames_processed",
                  "matches": "matches", "alerts": "alerts", "faces_unmatched_no_watchlist": "no_watchlist"}
_REJECT_PREFIX = "quality_reject_"


def audit_db_path(cfg: Config) -> Path:
    """The audit database path: [audit] db, relative to [unit] data_dir unless absolute."""
    db = Path(cfg.audit.db)
    return db if db.is_absolute() else resolve(cfg.unit.data_dir) / db


def open_audit_log(cfg: Config, keystore: KeyStore) -> AuditLog:
    """Open the unit's audit log, signed with the unit key of ``keystore``."""
    return AuditLog.open(audit_db_path(cfg), keystore.signing_key(), cfg.unit.id,
                         head_every_n=cfg.audit.head_every_entries, head_every_s=cfg.audit.head_every_s)


def service_start_payload(cfg: Config, model_hashes: dict[str, str], backend: str | None = None) -> dict:
    """The ``service_start`` payload: version, SHA-256 of the config file, model hashes."""
    from_file = cfg.source_path and Path(cfg.source_path).is_file()  # a config given in memory has no file
    config_digest = (config_hash(cfg.source_path) if from_file
                     else hashlib.sha256(cfg.model_dump_json().encode()).hexdigest())
    payload = {"version": __version__, "config_hash": config_digest, "model_hashes": dict(model_hashes)}
    if backend:
        payload["backend"] = backend
    return payload


def alert_event(alert) -> str:
    """The audit event type of a pipeline Alert: ``alert`` or ``repeat_sighting``."""
    return "repeat_sighting" if getattr(alert, "kind", "alert") == "repeat_sighting" else "alert"


def alert_payload(alert) -> dict:
    """The audit payload of a pipeline Alert (or repeat sighting, which also names its original
    alert): references and numbers, no image, no embedding."""
    payload = {"alert_id": alert.alert_id, "time": alert.time, "subject_ref": alert.subject_ref,
               "score": round(float(alert.score), 6), "threshold": float(alert.threshold),
               "model_id": alert.model_id, "camera_id": alert.camera, "track_id": int(alert.track_id)}
    if alert.deployment_id:
        payload["deployment_id"] = alert.deployment_id
    if alert_event(alert) == "repeat_sighting":
        payload["original_alert_id"] = alert.original_alert_id
    return payload


def counters_payload(now: dict, before: dict, period_start: str, period_end: str) -> dict:
    """One period's counts from two cumulative snapshots of the runner's counters."""
    payload = {"period_start": period_start, "period_end": period_end, "faces_seen": 0,
               "non_matches_discarded": 0, "frames_dropped": 0, "quality_rejects": {}}
    for name, value in now.items():
        delta = max(0, int(value) - int(before.get(name, 0)))
        if name.startswith(_REJECT_PREFIX):
            payload["quality_rejects"][name[len(_REJECT_PREFIX):][:64]] = delta
        elif name in _COUNTER_NAMES:
            payload[_COUNTER_NAMES[name]] = delta
    return payload


def fault_payload(payload: dict) -> dict:
    """A runner fault ({"kind", "message"}) in the schema's terms."""
    kind = str(payload.get("kind", "other"))
    detail = str(payload.get("message", payload.get("detail", "")))
    if kind not in FAULT_KINDS:
        kind, detail = "other", f"{kind}: {detail}"
    return {"kind": kind, "detail": detail[:200]}


class AuditSink:
    """The runner's audit hooks over one open AuditLog."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._counters: dict = {}
        self._period_start = utc_text()

    def event(self, kind: str, payload: dict) -> None:
        """Record a runner event (counters, fault, or any schema event type)."""
        if kind == "counters":
            end = utc_text()
            self.log.append("counters", counters_payload(payload, self._counters, self._period_start, end))
            self._counters, self._period_start = dict(payload), end
        elif kind == "fault":
            self.log.append("fault", fault_payload(payload))
        else:
            self.log.append(kind, payload)
        self.log.tick()


DECISION_WORDS = {"confirm": "confirmed", "reject": "rejected", "unable": "unable"}


def adjudication_payload(adj: dict) -> dict:
    """The ``adjudication`` entry of an accepted adjudication (AdjudicationIntake's ``on_accepted``).

    Carries every signed member (so an auditor holding the console's public key can check the
    console signature again: appliance.mqtt.adjudication.message_from_entry), the certificate CN
    that sent it and the deployment of the alert as the unit recorded it.
    """
    payload = {"alert_id": adj["alert_id"], "decision": DECISION_WORDS[adj["decision"]],
               "officer_ids": list(adj["officer_ids"]), "time": adj["time"],
               "adjudication_id": adj["adjudication_id"], "console_key": adj["key_id"],
               "console_sig": adj["sig"]}
    optional = {"deployment_id": adj.get("deployment_id"), "sender": adj.get("sender"), "note": adj.get("note")}
    payload.update({k: v for k, v in optional.items() if v})
    return payload


def refusal_payload(verdict) -> dict:
    """The ``adjudication_refused`` entry of a refused adjudication (AdjudicationIntake's ``on_rejected``).

    Only values already checked against their grammar are kept (the sender CN from the topic,
    ids of a message that passed its schema); the detail is the intake's own text.
    """
    from .events import _check  # noqa: PLC0415  (the audit log's own identifier grammar)

    payload = {"reason": verdict.reason, "detail": verdict.detail[:200]}
    for name in ("sender", "adjudication_id", "alert_id", "console_key", "deployment_id"):
        value = getattr(verdict, name)
        if value and _check("id", value) is None:
            payload[name] = value
    return payload


def adjudication_callbacks(log: AuditLog) -> dict:
    """AlertPublisher's adjudication callbacks over one audit log: accepted ones audited as
    ``adjudication``, refused ones as ``adjudication_refused`` (pass as ``**callbacks``)."""
    return {"on_adjudication": lambda adj: log.append("adjudication", adjudication_payload(adj)),
            "on_adjudication_rejected": lambda verdict: log.append("adjudication_refused", refusal_payload(verdict))}
