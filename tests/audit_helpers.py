"""Helpers for the audit tests: example events, a filled log, export line surgery."""
from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit.export import export_log
from appliance.audit.log import AuditLog

H = "ab" * 32
T = "2026-11-28T09:00:00.000Z"

EXAMPLES = {
    "service_start": {"version": "0.1.0", "config_hash": H, "model_hashes": {"mobilefacenet": H},
                      "backend": "litert"},
    "service_stop": {"reason": "SIGTERM"},
    "config_change": {"key": "match.hits_needed", "old": "2", "new": "3", "config_hash": H},
    "threshold_change": {"old": 0.55, "new": 0.6, "floor": 0.45, "model_id": "mobilefacenet@d8ba40c0127f",
                         "by": "pc-1234"},
    "deployment_start": {"deployment_id": "op-kestrel-1", "authorising_officer": "supt-0042",
                         "location_label": "High Street, north end", "not_before": T,
                         "not_after": "2026-11-28T18:00:00Z"},
    "deployment_end": {"deployment_id": "op-kestrel-1", "reason": "ended by operator"},
    "watchlist_load": {"deployment_id": "op-kestrel-1", "bundle_hash": H, "entry_count": 120,
                       "model_id": "mobilefacenet@d8ba40c0127f", "threshold": 0.66, "expected_fpir": 0.00093,
                       "target_fpir": 0.001, "threshold_source": "card", "threshold_floor": 0.65},
    "watchlist_refused": {"bundle_hash": H, "reason": "expired", "deployment_id": "op-kestrel-1"},
    "watchlist_expired": {"deployment_id": "op-kestrel-1", "bundle_hash": H},
    "watchlist_purge": {"deployment_id": "op-kestrel-1", "bundle_hash": H, "reason": "expired; 120 entries"},
    "alert": {"alert_id": "3f1c9a8e-2b7d-4c1e-9f00-0a1b2c3d4e5f", "time": "2026-11-28T09:12:00.123+00:00",
              "subject_ref": "S-0007", "score": 0.71, "threshold": 0.55,
              "model_id": "mobilefacenet@d8ba40c0127f", "deployment_id": "op-kestrel-1",
              "camera_id": "cam0", "track_id": 17},
    "repeat_sighting": {"alert_id": "9d2e4f6a-1b3c-4d5e-8f70-0a1b2c3d4e5f", "time": "2026-11-28T09:12:40.500Z",
                        "original_alert_id": "3f1c9a8e-2b7d-4c1e-9f00-0a1b2c3d4e5f", "subject_ref": "S-0007",
                        "score": 0.69, "threshold": 0.55, "model_id": "mobilefacenet@d8ba40c0127f",
                        "deployment_id": "op-kestrel-1", "camera_id": "cam0", "track_id": 21},
    "adjudication": {"alert_id": "3f1c9a8e-2b7d-4c1e-9f00-0a1b2c3d4e5f", "decision": "confirmed",
                     "officer_ids": ["pc-1234", "pc-5678"], "time": "2026-11-28T09:13:00Z",
                     "deployment_id": "op-kestrel-1", "adjudication_id": "6b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
                     "sender": "console-01", "console_key": "1d75:80ad:1fc4:6928:52d9:e4a6:4c70:e872",
                     "console_sig": "A" * 86 + "==", "note": "same scar, checked ID"},
    "adjudication_refused": {"reason": "unknown_key", "detail": "key 0000:... is not in [mqtt] console_keys",
                             "sender": "console-01", "adjudication_id": "6b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e60",
                             "alert_id": "3f1c9a8e-2b7d-4c1e-9f00-0a1b2c3d4e5f",
                             "console_key": "0000:80ad:1fc4:6928:52d9:e4a6:4c70:e872"},
    "counters": {"period_start": T, "period_end": "2026-11-28T09:01:00.000Z", "faces_seen": 250,
                 "quality_rejects": {"size": 30, "blur": 12, "pose": 4}, "non_matches_discarded": 190,
                 "frames_dropped": 3, "frames_processed": 900, "deployment_id": "op-kestrel-1"},
    "fault": {"kind": "broker_down", "detail": "connection refused"},
}


def new_key() -> Ed25519PrivateKey:
    """A fresh unit key."""
    return Ed25519PrivateKey.generate()


def fill(db: Path, key: Ed25519PrivateKey, n: int, unit: str = "van-01", head_every_n: int = 8) -> None:
    """Append ``n`` events (cycling through every example type) and close cleanly."""
    log = AuditLog.open(db, key, unit, head_every_n=head_every_n, head_every_s=3600)
    kinds = sorted(EXAMPLES)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        payload = dict(EXAMPLES[kind])
        if kind == "fault":
            payload["detail"] = f"event {i}"
        log.append(kind, payload)
    log.close()


def exported(tmp: Path, key: Ed25519PrivateKey, n: int = 40, unit: str = "van-01", name: str = "log") -> Path:
    """A log of ``n`` events plus the genesis entry, exported to <tmp>/<name>.jsonl."""
    db = tmp / f"{name}.db"
    fill(db, key, n, unit)
    out = tmp / f"{name}.jsonl"
    export_log(db, out)
    return out


def read_lines(path: Path) -> list[str]:
    """The export's lines without newlines."""
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write lines back as an export file."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def entry_index(lines: list[str], seq: int) -> int:
    """Line index of the entry with ``seq``."""
    for i, line in enumerate(lines):
        obj = json.loads(line)
        if "entry" in obj and json.loads(obj["entry"])["seq"] == seq:
            return i
    raise KeyError(seq)


def head_index(lines: list[str], head_no: int) -> int:
    """Line index of tree head number ``head_no``."""
    for i, line in enumerate(lines):
        obj = json.loads(line)
        if "head" in obj and json.loads(obj["head"]["body"])["head_no"] == head_no:
            return i
    raise KeyError(head_no)


def fix_end_count(lines: list[str]) -> list[str]:
    """Make the (unsigned) end line agree with the entries present, as a careful forger would."""
    count = sum(1 for line in lines if '"entry"' in line[:12])
    return lines[:-1] + [json.dumps({"end": {"entries": count, "heads": json.loads(lines[-1])["end"]["heads"]}})]


# The head of a child script that makes the listed top-level modules unimportable
# (argv[1]: comma-separated names) and remembers what was loaded before (BEFORE).
IMPORT_BLOCKER = r"""
import importlib.abc, json, sys
BEFORE = set(sys.modules)
FORBIDDEN = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"blocked for the offline verifier: {name}")
        return None
sys.meta_path.insert(0, Block())
"""


DEP = "op-kestrel-1"


def alert_payload(n: int, deployment: str = DEP) -> dict:
    """Alert number ``n`` of a deployment."""
    return dict(EXAMPLES["alert"], alert_id=f"alert-{deployment}-{n}", deployment_id=deployment)


def adjudication_payload(n: int, decision: str, deployment: str = DEP) -> dict:
    """An officer's decision on alert ``n``."""
    return dict(EXAMPLES["adjudication"], alert_id=f"alert-{deployment}-{n}", decision=decision,
                deployment_id=deployment)


def deployment_log(db: Path, key: Ed25519PrivateKey, alerts: int = 14, decisions: tuple = (),
                   unit: str = "van-01", head_every_n: int = 6) -> None:
    """A log with one deployment: counters, ``alerts`` alerts, the given decisions (in alert order), its end."""
    log = AuditLog.open(db, key, unit, head_every_n=head_every_n, head_every_s=3600)
    log.append("deployment_start", dict(EXAMPLES["deployment_start"], deployment_id=DEP))
    log.append("counters", dict(EXAMPLES["counters"], faces_seen=4000, deployment_id=DEP))
    for n in range(alerts):
        log.append("alert", alert_payload(n))
    for n, decision in enumerate(decisions):
        log.append("adjudication", adjudication_payload(n, decision))
    log.append("deployment_end", {"deployment_id": DEP, "reason": "ended by operator"})
    log.close()
