"""`appliance audit`: export, verify, report, status and key of the signed audit log.

Each command is a few lines over appliance.audit; heavy modules are imported
inside the command so `audit verify` pulls in only the verifier's own modules.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ..config import Config, load_config


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config) if args.config else Config()


def _db(args: argparse.Namespace) -> Path:
    from ..audit.sink import audit_db_path  # noqa: PLC0415

    return Path(args.db) if getattr(args, "db", None) else audit_db_path(_config(args))


def cmd_export(args: argparse.Namespace) -> int:
    """Write the export file an auditor verifies offline."""
    from ..audit.export import export_log, sign_export_head  # noqa: PLC0415
    from ..keystore import unit_keystore  # noqa: PLC0415

    cfg, db = _config(args), _db(args)
    if not args.no_sign and args.until is None:
        sign_export_head(db, unit_keystore(cfg).signing_key(), cfg.unit.id)
    summary = export_log(db, Path(args.out), since=args.since, until=args.until,
                         previous_head=Path(args.previous_head) if args.previous_head else None)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify an export offline; exit 0 verified, 4 unreadable, 10 failed (docs/audit.md)."""
    from ..audit import verify  # noqa: PLC0415

    return verify.run(args)


def cmd_report(args: argparse.Namespace) -> int:
    """Counts, adjudications and the officer-verified alert rate, per deployment or overall."""
    from ..audit import report  # noqa: PLC0415

    if args.export:
        from ..audit.verify import _load_pinned  # noqa: PLC0415

        pinned = _load_pinned(args.unit_key) if args.unit_key else None
        entries, head = report.entries_from_export(Path(args.export), pinned)
    else:
        entries, head = report.entries_from_db(_db(args))
    result = report.build_report(entries, args.deployment) | {"as_of_head": head}
    print(json.dumps(result, indent=2) if args.json else report.render(result))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Entries, last signed head, uncovered entries and free space of the audit log."""
    from ..audit.log import connect, load_heads, read_meta  # noqa: PLC0415

    db_path = _db(args)
    db = connect(db_path, readonly=True)
    try:
        size = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries").fetchone()[0]
        last = load_heads(db)[-1].fields
        meta = read_meta(db)
    finally:
        db.conn.close()
    free = shutil.disk_usage(db_path.parent).free
    print(json.dumps({"db": str(db_path), "unit": meta.get("unit"), "log_id": meta.get("log_id"),
                      "entries": size, "uncovered": size - last["tree_size"],
                      "last_head": {k: last[k] for k in ("head_no", "tree_size", "time", "reason")},
                      "free_bytes": free}, indent=2))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    """Print the unit's audit public key (PEM) for auditors to pin with --unit-key."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    from ..audit.heads import fingerprint  # noqa: PLC0415
    from ..keystore import unit_keystore  # noqa: PLC0415

    cfg = _config(args)
    public = unit_keystore(cfg).verify_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    print(pem.decode().strip())
    print(f"# unit {cfg.unit.id}, fingerprint {fingerprint(public)}")
    return 0


def _common(p: argparse.ArgumentParser, db: bool = True) -> None:
    p.add_argument("--config", help="appliance TOML (default: built-in defaults)")
    if db:
        p.add_argument("--db", help="audit database path (overrides [audit] db)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `appliance audit ...`."""
    from ..audit.verify import add_arguments  # noqa: PLC0415 (stdlib + cryptography only)

    p = sub.add_parser("audit", help="export, verify and report the signed audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    q = asub.add_parser("export", help="write a self-contained export for auditors")
    _common(q)
    q.add_argument("--out", required=True, help="export file to write (.jsonl)")
    q.add_argument("--since", help="first entry time (UTC ISO 8601, e.g. 2026-11-28T00:00:00Z)")
    q.add_argument("--until", help="end at the last signed head at or before this time")
    q.add_argument("--previous-head", help="previous export (or head file): add a consistency proof "
                                           "and start after it")
    q.add_argument("--no-sign", action="store_true", help="do not sign a head over uncovered entries first")
    q.set_defaults(func=cmd_export)
    q = asub.add_parser("verify", help="verify an export offline (Python + cryptography only)",
                        epilog="exit codes: 0 verified, 2 usage, 4 unreadable export, 10 verification failed")
    add_arguments(q)
    q.set_defaults(func=cmd_verify)
    q = asub.add_parser("report", help="alerts, adjudications and the officer-verified alert rate")
    _common(q)
    q.add_argument("--deployment", help="only this deployment id")
    q.add_argument("--json", action="store_true", help="JSON output")
    q.add_argument("--export", help="report from a verified export file instead of the database")
    q.add_argument("--unit-key", help="with --export: the unit's public key to pin")
    q.set_defaults(func=cmd_report)
    q = asub.add_parser("status", help="entries, last signed head and free space")
    _common(q)
    q.set_defaults(func=cmd_status)
    q = asub.add_parser("key", help="print the unit's audit public key for auditors")
    _common(q, db=False)
    q.set_defaults(func=cmd_key)
