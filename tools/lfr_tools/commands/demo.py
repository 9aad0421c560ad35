"""`appliance demo`: compose a clip from registry photos and replay it through the unit."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    """Compose the demo clip from registry photos and replay it through the pipeline."""
    from ..demo import run_demo  # noqa: PLC0415

    if not 0 <= args.hold <= 3600:
        from appliance.errors import UsageError  # noqa: PLC0415

        raise UsageError("--hold must be between 0 and 3600 seconds", fix="e.g. --hold 600")
    return run_demo(Path(args.workdir), console=args.console, hold_s=args.hold)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    p = sub.add_parser("demo", help="compose a clip from registry photos and replay it")
    p.add_argument("--workdir", default="var/demo", help="where the clip and config go")
    p.add_argument("--console", action="store_true",
                   help="also run the officers' console on the demo's alerts (prints its URL and a demo sign-in)")
    p.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                   help="with --console: keep the unit and console up this long after the clip (0-3600)")
    p.set_defaults(func=cmd_demo)
