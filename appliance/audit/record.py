"""The deployment record: the figures a force publishes for one deployment (G8, G10).

Computed from the audit entries of one deployment with the same counting as
``appliance audit report`` (report.build_report), so the record the unit publishes on
``lfr/v1/<unit>/record`` and the auditor's report can never disagree. Pure: entries in,
a dict out (the body of the signed ``record`` payload, docs/schemas/record.json).
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

from ..clock import utc_text
from .report import build_report, deployment_entries

def utc_z(value: str | None) -> str | None:
    """An ISO 8601 time with a zone as UTC with a Z suffix and at most microseconds; None stays None."""
    if not value:
        return None
    return utc_text(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))


def _first(entries: list[dict], kind: str) -> dict | None:
    return next((e for e in entries if e["type"] == kind), None)


def _last(entries: list[dict], kind: str) -> dict | None:
    return next((e for e in reversed(entries) if e["type"] == kind), None)


def _threshold(entries: list[dict], default: float | None) -> float | None:
    """The threshold in force: the last change audited, else the last alert's, else ``default``."""
    change = _last(entries, "threshold_change")
    if change:
        return float(change["payload"]["new"])
    alert = _last(entries, "alert")
    return float(alert["payload"]["threshold"]) if alert else default


def _window(entries: list[dict]) -> dict:
    start, end = _first(entries, "deployment_start"), _last(entries, "deployment_end")
    auth = start["payload"] if start else {}
    started = utc_z(start["time"]) if start else None
    return {"date": (started or utc_z(entries[0]["time"]))[:10], "location": auth.get("location_label", ""),
            "started": started, "ended": utc_z(end["time"]) if end else None,
            "not_before": utc_z(auth.get("not_before")), "not_after": utc_z(auth.get("not_after"))}


def deployment_record(entries: Iterable[dict], deployment_id: str, threshold: float | None = None) -> dict:
    """The record of ``deployment_id`` from decoded audit entries (the whole log or more).

    ``threshold`` is used only when no alert or threshold change in the deployment shows it.
    Raises ValueError when the entries hold no trace of the deployment.
    """
    entries = list(entries)
    chosen = list(deployment_entries(entries, deployment_id))
    if not chosen:
        raise ValueError(f"no audit entry names deployment {deployment_id!r}")
    report = build_report(entries, deployment_id)
    load = _last(chosen, "watchlist_load")
    window = _window(chosen)
    record = {"deployment_id": deployment_id, **window,
              "watchlist_size": load["payload"]["entry_count"] if load else None,
              "faces_seen": report["faces_seen"], "alerts": report["alerts"],
              "repeat_sightings": report["repeat_sightings"],
              "confirmed_true": report["confirmed"], "confirmed_false": report["rejected"],
              "unable": report["unable"], "not_adjudicated": report["not_adjudicated"],
              "verified_alert_rate": report["verified_alert_rate"],
              "false_alerts_per_1000_faces": report["false_alerts_per_1000_faces"],
              "threshold": _threshold(chosen, threshold),
              "model_id": load["payload"]["model_id"] if load else None}
    if window["started"] is None:
        record["started"] = utc_z(chosen[0]["time"])
    return record


def record_from_db(db_path, deployment_id: str, threshold: float | None = None) -> dict:
    """The record of one deployment from the unit's audit database (read-only)."""
    from .report import entries_from_db  # noqa: PLC0415

    entries, _head = entries_from_db(db_path)
    return deployment_record(entries, deployment_id, threshold)
