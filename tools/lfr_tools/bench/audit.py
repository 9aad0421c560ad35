"""Audit log benchmark: append rate with synchronous=FULL; export and verify of a 1,000,000-entry log.

The large log is filled with batched inserts (same entry bytes, schemas and signed
heads every 1,000 entries as the live path, one transaction per batch) because
1,000,000 fsync'd single appends would take the better part of an hour here;
the live append path is measured separately. Export and verify each run in their
own process so peak memory (max RSS) is theirs alone. Set AUDIT_BENCH_ENTRIES to
change the size.
"""
from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit import events, heads
from appliance.audit.log import AuditLog, connect
from appliance.clock import utc_text
from appliance.audit.merkle import CompactRange, leaf_hash
from appliance.audit.schema import migrate

UNIT = "van-bench"
APPENDS = 1500
HEAD_EVERY = 1000
BATCH = 20000


def _alert(i: int) -> dict:
    return {"alert_id": f"bench-{i:08d}", "time": utc_text(), "subject_ref": f"S-{i % 5000:05d}",
            "score": 0.61 + (i % 37) / 100, "threshold": 0.55, "model_id": "mobilefacenet@d8ba40c0127f",
            "deployment_id": "op-bench-1", "camera_id": "cam0", "track_id": i}


def _counters(i: int) -> dict:
    return {"period_start": utc_text(), "period_end": utc_text(), "faces_seen": 200 + i % 50,
            "quality_rejects": {"size": i % 13, "blur": i % 7, "pose": i % 3},
            "non_matches_discarded": 150 + i % 40, "frames_dropped": i % 5, "frames_processed": 900}


def _event(i: int) -> tuple[str, dict]:
    """A mix close to a deployment's: mostly counters, some alerts, adjudications and faults."""
    if i % 10 == 0:
        return "alert", _alert(i)
    if i % 10 == 1:
        return "adjudication", {"alert_id": f"bench-{i - 1:08d}", "decision": "confirmed",
                                "officer_ids": ["pc-1234"], "time": utc_text()}
    if i % 50 == 7:
        return "fault", {"kind": "broker_down", "detail": f"bench fault {i}"}
    return "counters", _counters(i)


def bench_append(db: Path, key: Ed25519PrivateKey) -> dict:
    """Live-path appends (one COMMIT each, WAL + synchronous=FULL), per-append latency."""
    log = AuditLog.open(db, key, UNIT, head_every_n=HEAD_EVERY, head_every_s=3600)
    times = []
    for i in range(APPENDS):
        kind, payload = _event(i)
        start = time.perf_counter()
        log.append(kind, payload)
        times.append(time.perf_counter() - start)
    log.close()
    times.sort()
    return {"appends": APPENDS, "synchronous": "FULL", "journal_mode": "WAL",
            "rate_per_s": round(APPENDS / sum(times), 1),
            "median_ms": round(statistics.median(times) * 1000, 3),
            "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 3),
            "max_ms": round(times[-1] * 1000, 3)}


def _sign(key, tree: CompactRange, last: heads.TreeHead | None, reason: str) -> heads.TreeHead:
    fields = last.fields if last else None
    return heads.sign_head(key, unit=UNIT, head_no=fields["head_no"] + 1 if fields else 0,
                           tree_size=tree.size, root=tree.root(), time=utc_text(),
                           prev=last.digest() if last else "", reason=reason)


def _insert_batch(conn, rows: list, head_rows: list) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO entries (seq, time, type, body, leaf_hash) VALUES (?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO heads (head_no, tree_size, time, body, signature) VALUES (?,?,?,?,?)",
                     head_rows)
    conn.execute("COMMIT")


def bulk_fill(db_path: Path, key: Ed25519PrivateKey, n: int) -> None:
    """A valid n-entry log written in batches (entries, heads every HEAD_EVERY, log_created first)."""
    db = connect(db_path)
    migrate(db)
    public = key.public_key()
    pub_b64 = base64.b64encode(heads.public_raw(public)).decode()
    log_id = heads.log_id(public)
    db.conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
        ("log_id", log_id), ("unit", UNIT), ("created", utc_text()), ("public_key", pub_b64)])
    tree, last, rows, head_rows = CompactRange(), None, [], []
    for seq in range(n):
        kind, payload = (("log_created", {"public_key": pub_b64, "key_fingerprint": heads.fingerprint(public)})
                         if seq == 0 else _event(seq))
        now = utc_text()
        body = events.encode_entry(seq, log_id, UNIT, now, kind, payload)
        leaf = leaf_hash(body)
        rows.append((seq, now, kind, body, leaf))
        tree.append(leaf)
        if seq == 0 or tree.size % HEAD_EVERY == 0 or seq == n - 1:
            last = _sign(key, tree, last, "created" if seq == 0 else "entries")
            f = last.fields
            head_rows.append((f["head_no"], f["tree_size"], f["time"], last.body, last.signature))
        if len(rows) >= BATCH:
            _insert_batch(db.conn, rows, head_rows)
            rows, head_rows = [], []
    _insert_batch(db.conn, rows, head_rows)
    db.conn.close()


def _timed_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; its wall time, its own max RSS, its last stdout line."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        text, errors = out.read().strip(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"bench child failed ({child.returncode}): {errors[-2000:]}")
    return {"seconds": round(wall, 2), "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "out": text.splitlines()[0] if text else ""}


EXPORT_CODE = ("import sys, json; from pathlib import Path; from appliance.audit.export import export_log; "
               "print(json.dumps(export_log(Path(sys.argv[1]), Path(sys.argv[2]))))")
VERIFY_CODE = ("import sys; from appliance.audit.verify import main; "
               "sys.exit(main([sys.argv[1], '--unit-key', sys.argv[2]]))")


def run(out_dir: Path) -> dict:
    """Append rate; fill, open, export and verify for AUDIT_BENCH_ENTRIES (default 1,000,000)."""
    n = int(os.environ.get("AUDIT_BENCH_ENTRIES", "1000000"))
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        work = Path(tmp)
        result = {"append": bench_append(work / "append.db", key), "entries": n}
        start = time.perf_counter()
        bulk_fill(work / "big.db", key, n)
        result["fill_batched_s"] = round(time.perf_counter() - start, 2)
        result["db_mb"] = round(sum(p.stat().st_size for p in work.glob("big.db*")) / 1e6, 1)
        start = time.perf_counter()
        AuditLog.open(work / "big.db", key, UNIT).close(final_head=None)
        result["open_check_s"] = round(time.perf_counter() - start, 2)
        export = _timed_child(EXPORT_CODE, str(work / "big.db"), str(work / "big.jsonl"))
        result["export"] = {k: export[k] for k in ("seconds", "max_rss_mb")}
        result["export"]["file_mb"] = round((work / "big.jsonl").stat().st_size / 1e6, 1)
        raw = heads.public_raw(key.public_key()).hex()
        verify = _timed_child(VERIFY_CODE, str(work / "big.jsonl"), raw)
        result["verify"] = {"seconds": verify["seconds"], "max_rss_mb": verify["max_rss_mb"],
                            "verdict": verify["out"][:200]}
    result["per_million"] = {k: round(v * 1_000_000 / n, 1) for k, v in
                             (("fill_s", result["fill_batched_s"]), ("export_s", result["export"]["seconds"]),
                              ("verify_s", result["verify"]["seconds"]))}
    print(json.dumps(result), file=sys.stderr)
    return result
