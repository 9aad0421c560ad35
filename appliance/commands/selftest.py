"""`appliance selftest [--json]`: the technician's PASS / WARN / FAIL table, with an exit code."""
from __future__ import annotations

import argparse

from ..config import load_config
from ..errors import SelfTestFailed

DEFAULT_CONFIG = "/etc/appliance/appliance.toml"


def cmd_selftest(args: argparse.Namespace) -> int:
    """Run the checks; print the table (or JSON); exit 13 when any check failed."""
    from ..selftest import CHECKS, Outcome, SelfTestContext, overall, run_selftest  # noqa: PLC0415
    from ..selftest.report import as_json, render_table  # noqa: PLC0415

    cfg = load_config(args.config)
    unknown = sorted(set(args.only or []) - set(CHECKS))
    if unknown:
        from ..errors import UsageError  # noqa: PLC0415

        raise UsageError(f"unknown check(s) {', '.join(unknown)}", fix=f"choose from {', '.join(CHECKS)}")
    results = run_selftest(SelfTestContext(cfg, service_user=args.service_user), args.only)
    verdict = overall(results)
    if args.json:
        print(as_json(results, verdict, cfg.unit.id))
    else:
        render_table(results, verdict)
    if verdict is Outcome.FAIL:
        failing = ", ".join(r.name for r in results if r.outcome is Outcome.FAIL)
        raise SelfTestFailed(f"self-test failed: {failing}", fix="apply the fix shown for each FAIL row, then run it again")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `appliance selftest`."""
    p = sub.add_parser("selftest", help="check camera, models, keys, clock, disk, broker, audit log, deployment")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"the unit's config (default {DEFAULT_CONFIG})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--only", action="append", metavar="CHECK", help="run only this check (repeatable)")
    p.add_argument("--service-user", default="appliance", metavar="USER",
                   help="the user the unit's service runs as, who must own the keys (default appliance, "
                        "as in systemd/appliance.service)")
    p.set_defaults(func=cmd_selftest)
