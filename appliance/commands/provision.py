"""`appliance provision`: guided, or non-interactive from a provisioning file; `provision verify`."""
from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path

from ..errors import UsageError


def _plan(args: argparse.Namespace, root):
    from rich.prompt import Prompt  # noqa: PLC0415

    from ..provision.guided import guided_plan  # noqa: PLC0415
    from ..provision.plan import load_plan  # noqa: PLC0415

    if args.non_interactive:
        if not args.file:
            raise UsageError("--non-interactive needs --file", fix="pass the provisioning file with --file")
        return load_plan(args.file)
    start = tomllib.loads(Path(args.file).read_text()) if args.file else {}
    profiles = sorted(p.stem for p in root.shared("profiles").glob("*.toml"))
    return guided_plan(root, start, profiles, Prompt.ask)


def cmd_provision(args: argparse.Namespace) -> int:
    """Provision (or re-check) this unit; print each step and the self-test table."""
    from rich.console import Console  # noqa: PLC0415

    from ..provision import provision  # noqa: PLC0415
    from ..provision.layout import Root  # noqa: PLC0415
    from ..selftest import overall  # noqa: PLC0415
    from ..selftest.report import render_table  # noqa: PLC0415

    root = Root(Path(args.root))
    if root.is_live and os.geteuid() != 0:
        raise UsageError("provisioning the unit needs root", fix="run: sudo appliance provision")
    plan = _plan(args, root)
    console = Console()

    def report(step) -> None:
        mark = "[yellow]changed[/]" if step.changed else "[green]unchanged[/]"
        console.print(f"{step.step:13} {mark}  {step.detail}")
        if step.warning:
            console.print(f"{'':13} [yellow]note:[/] {step.warning}")

    steps, results = provision(plan, root.path, report)
    render_table(results, overall(results))
    changed = sum(s.changed for s in steps)
    console.print(f"provision: unit {plan.unit.id} commissioned; {changed} step(s) changed something")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a commissioning record's signature and, with --audit-db, its audit entry."""
    from ..provision import verify_record  # noqa: PLC0415

    record = verify_record(Path(args.record), Path(args.audit_db) if args.audit_db else None)
    verdict = record["selftest"]["verdict"]
    print(f"{args.record}: signature OK; unit {record['inputs']['unit']}, {record['time']}, self-test {verdict}"
          + ("; hash found in the audit log" if args.audit_db else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `appliance provision` and `appliance provision-verify`."""
    p = sub.add_parser("provision", help="provision and commission this unit (guided, or --file ... --non-interactive)")
    p.add_argument("--file", help="provisioning file (TOML; docs/technician.md)")
    p.add_argument("--non-interactive", action="store_true", help="ask nothing: everything comes from --file")
    p.add_argument("--root", default="/", help="provision the system under this root (default /)")
    p.set_defaults(func=cmd_provision)
    v = sub.add_parser("provision-verify", help="verify a commissioning record (signature, audit entry)")
    v.add_argument("record")
    v.add_argument("--audit-db", help="the unit's audit.db: also check that it holds the record's hash")
    v.set_defaults(func=cmd_verify)
