"""`appliance audit report`: what the unit did and how often it was right (G6-G8).

Reads decoded entries (from the unit's database, or from an export that has just
verified) and counts, per deployment or overall: faces seen, alerts, adjudicated,
confirmed, rejected, unable to verify, the officer-verified alert rate and false
alerts per 1,000 faces. Definitions are in docs/audit.md.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import AuditError
from . import events
from .log import connect, iter_entries, load_heads


def entries_from_db(db_path: Path) -> tuple[list[dict], dict | None]:
    """Decoded entries of the unit's log and its last signed head's fields."""
    db = connect(Path(db_path), readonly=True)
    try:
        entries = [events.decode_entry(body) for _seq, body, _leaf in iter_entries(db)]
        stored = load_heads(db)
    finally:
        db.conn.close()
    return entries, (stored[-1].fields if stored else None)


def entries_from_export(path: Path, unit_key=None, previous_head=None,
                        partial: bool = False) -> tuple[list[dict], dict | None]:
    """The entries an export holds, exactly as its verification accepted them (AuditError otherwise).

    The file is read once, by the verifier; the report counts only the entries it kept,
    so nothing the verifier skipped or refused can reach a figure.
    """
    from .verify import verify_export  # noqa: PLC0415 (keeps report usable without verify when reading the DB)
    from .verify_checks import ExportFormatError  # noqa: PLC0415

    try:
        verdict = verify_export(Path(path), unit_key, previous_head, partial=partial, keep_entries=True)
    except ExportFormatError as exc:
        raise AuditError(f"{path} is not a readable audit export: {exc}",
                         fix=f"run `appliance audit verify {path}` and export again from the unit") from None
    if not verdict.ok or verdict.entries is None:
        where, why = verdict.problems[0]
        raise AuditError(f"{path} does not verify ({len(verdict.problems)} problem(s)); first: {where}: {why}",
                         fix=f"run `appliance audit verify {path}` for every problem")
    return verdict.entries, {"head_no": verdict.facts["final_head_no"], "tree_size": verdict.facts["tree_size"],
                             "root": verdict.facts["root"], "time": verdict.facts["final_time"]}


def deployment_entries(entries: list[dict], deployment: str) -> Iterator[dict]:
    """Entries from the deployment's start to its end, plus any naming it elsewhere (e.g. a late
    adjudication, which carries the deployment id of its alert)."""
    inside = False
    for entry in entries:
        payload = entry["payload"]
        named = payload.get("deployment_id") == deployment
        if entry["type"] == "deployment_start" and named:
            inside = True
        if inside or named:
            yield entry
        if entry["type"] == "deployment_end" and named:
            inside = False


def _rate(part: int, whole: int, scale: float = 1.0) -> float | None:
    return round(part / whole * scale, 6) if whole else None


def build_report(entries: Iterable[dict], deployment: str | None = None) -> dict:
    """Count faces, alerts and adjudications; compute the verified-alert rate (G8)."""
    entries = list(entries)
    chosen = list(deployment_entries(entries, deployment)) if deployment else entries
    counts, rejects = Counter(), Counter()
    alerts, repeats, decisions, deployments = {}, set(), {}, []
    for entry in chosen:
        kind, payload = entry["type"], entry["payload"]
        if kind == "counters":
            for name in ("faces_seen", "non_matches_discarded", "frames_dropped"):
                counts[name] += payload[name]
            rejects.update(payload["quality_rejects"])
        elif kind == "alert":
            alerts[payload["alert_id"]] = payload
        elif kind == "repeat_sighting":  # the subject alerted lately on that camera: no new alarm
            repeats.add(payload["alert_id"])
        elif kind == "adjudication":
            decisions[payload["alert_id"]] = payload["decision"]  # the latest decision stands
        elif kind == "deployment_start":
            deployments.append(payload["deployment_id"])
    final = Counter(decisions[a] for a in alerts if a in decisions)
    adjudicated = sum(final.values())
    faces = counts["faces_seen"]
    return {
        "deployment": deployment, "deployments": deployments, "entries": len(chosen),
        "faces_seen": faces, "quality_rejects": dict(rejects),
        "non_matches_discarded": counts["non_matches_discarded"], "frames_dropped": counts["frames_dropped"],
        "alerts": len(alerts), "repeat_sightings": len(repeats),
        "adjudicated": adjudicated, "not_adjudicated": len(alerts) - adjudicated,
        "confirmed": final["confirmed"], "rejected": final["rejected"], "unable": final["unable"],
        "verified_alert_rate": _rate(final["confirmed"], len(alerts)),
        "confirmed_of_decided": _rate(final["confirmed"], final["confirmed"] + final["rejected"]),
        "false_alerts_per_1000_faces": _rate(final["rejected"], faces, 1000.0),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def render(report: dict) -> str:
    """The report as a few lines for a person."""
    head = report.get("as_of_head") or {}
    fa = report["false_alerts_per_1000_faces"]
    return "\n".join([
        f"audit report: {'deployment ' + report['deployment'] if report['deployment'] else 'whole log'} "
        f"({report['entries']} entries; signed head #{head.get('head_no')} size {head.get('tree_size')})",
        f"  faces seen                 {report['faces_seen']}",
        f"  quality rejects            {sum(report['quality_rejects'].values())} {report['quality_rejects']}",
        f"  non-matches discarded      {report['non_matches_discarded']}",
        f"  alerts                     {report['alerts']}",
        f"  repeat sightings (not alarms)  {report.get('repeat_sightings', 0)}",
        f"  adjudicated                {report['adjudicated']} (not yet: {report['not_adjudicated']})",
        f"  confirmed / rejected / unable  {report['confirmed']} / {report['rejected']} / {report['unable']}",
        f"  officer-verified alert rate    {_pct(report['verified_alert_rate'])} of all alerts "
        f"({_pct(report['confirmed_of_decided'])} of confirmed+rejected)",
        f"  false alerts per 1,000 faces   {'n/a' if fa is None else f'{fa:.3f}'}",
    ])
