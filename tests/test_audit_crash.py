"""Crash test: a child appends events and is SIGKILLed at random moments, 50 times.

After each kill the log opens, verifies (export + offline verify of the whole
log) and holds every entry the child reported as committed (it reports a seq on
its stdout pipe only after ``append`` returned).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.audit.export import export_log
from appliance.audit.log import AuditLog, connect, iter_entries
from appliance.audit.verify import verify_export
from tests.audit_helpers import new_key

KILLS = 50
CHILD = r"""
import os, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from appliance.audit.log import AuditLog
key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), password=None)
log = AuditLog.open(sys.argv[1], key, "van-crash", head_every_n=7, head_every_s=0.05)
n = 0
while True:
    detail = f"child {os.getpid()} event {n}"
    seq = log.append("fault", {"kind": "other", "detail": detail})
    sys.stdout.write(f"{seq} {detail}\n")
    sys.stdout.flush()
    n += 1
"""


def _run_and_kill(db: Path, pem: Path, rng: random.Random, after_first: bool) -> dict[int, str]:
    """Start the child, SIGKILL it at a random moment, return what it reported committed."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(pem)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first = ""
    if after_first:
        first = child.stdout.readline()  # wait until one entry is committed
        time.sleep(rng.uniform(0.0, 0.25))
    else:
        time.sleep(rng.uniform(0.05, 0.8))  # may land while it imports, opens, migrates or recovers
    child.send_signal(signal.SIGKILL)
    out, _err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    text = first + out
    reported = {}
    for line in text.splitlines():
        seq, detail = line.split(" ", 1)
        reported[int(seq)] = detail
    return reported


def _stored(db: Path) -> dict[int, str]:
    store = connect(db, readonly=True)
    try:
        return {seq: json.loads(body)["payload"].get("detail", "") for seq, body, _l in iter_entries(store)}
    finally:
        store.conn.close()


@pytest.mark.slow
def test_sigkill_50_times_loses_nothing_committed(tmp_path):
    key = new_key()
    pem = tmp_path / "unit.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    db = tmp_path / "audit.db"
    rng = random.Random(6962)
    committed: dict[int, str] = {}
    for kill in range(KILLS):
        committed.update(_run_and_kill(db, pem, rng, after_first=kill % 2 == 0))
        if not db.exists():
            continue  # killed before the file was created
        log = AuditLog.open(db, key, "van-crash")   # opens after the crash (signs a recovery head)
        log.close(final_head=None)
        stored = _stored(db)
        lost = {s: d for s, d in committed.items() if stored.get(s) != d}
        assert not lost, f"kill {kill}: committed entries lost or changed: {sorted(lost)[:10]}"
        out = tmp_path / "export.jsonl"
        export_log(db, out)
        verdict = verify_export(out, key.public_key())
        assert verdict.ok, f"kill {kill}: {verdict.render()}"
        assert verdict.facts["tree_size"] == len(stored)
    assert len(committed) > KILLS, "the children should have committed many entries between kills"
    store = connect(db, readonly=True)
    reasons = dict(store.execute("SELECT json_extract(body, '$.reason'), COUNT(*) FROM heads GROUP BY 1"))
    store.conn.close()
    print(f"\n{KILLS} kills: {len(committed)} entries reported committed, {len(stored)} stored, "
          f"heads by reason {reasons}")
    assert reasons.get("recovery", 0) > 0, "some kills should have left entries without a head"
    os.remove(tmp_path / "export.jsonl")
