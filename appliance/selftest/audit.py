"""Audit log: an export of the unit's log verifies offline against the unit key, as an auditor's would.

The export is taken from a copy made with SQLite's backup API: the unit's database is left as it
was (a read-only connection to a WAL database leaves -wal and -shm files behind).
"""
from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from ..audit.export import export_log
from ..audit.sink import audit_db_path
from ..audit.verify import verify_export
from ..keystore import unit_keystore
from .base import CheckResult, SelfTestContext, failed, passed, warned

NAME = "audit"


def check(ctx: SelfTestContext) -> CheckResult:
    """Export (read-only) to a temp file and verify it with the unit key pinned."""
    db = audit_db_path(ctx.cfg)
    if not db.exists():
        return warned(NAME, f"no audit log yet at {db}",
                      "it is created by `appliance provision` (commissioning record) or the first run")
    key = unit_keystore(ctx.cfg).verify_key()
    with tempfile.TemporaryDirectory(prefix="selftest-audit-") as tmp:
        copy = Path(tmp) / "audit.db"
        with closing(sqlite3.connect(db, timeout=30)) as source, closing(sqlite3.connect(copy)) as dest:
            source.backup(dest)
        summary = export_log(copy, Path(tmp) / "export.jsonl")
        verdict = verify_export(Path(tmp) / "export.jsonl", unit_key=key)
    if not verdict.ok:
        where, why = verdict.problems[0]
        return failed(NAME, f"{db}: {len(verdict.problems)} problem(s), first: {where}: {why}",
                      "keep the unit and its SD card unchanged for the auditors; do not deploy it")
    return passed(NAME, f"{summary['entries']} entries up to signed head #{summary['final_head_no']} "
                        f"verify against the unit key")
