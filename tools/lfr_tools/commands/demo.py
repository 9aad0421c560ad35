"""`appliance demo`: compose a clip from registry photos and replay it through the unit."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    """Compose the demo clip from registry photos and replay it through the pipeline."""
    from ..demo import run_demo  # noqa: PLC0415

    return run_demo(Path(args.workdir))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    p = sub.add_parser("demo", help="compose a clip from registry photos and replay it")
    p.add_argument("--workdir", default="var/demo", help="where the clip and config go")
    p.set_defaults(func=cmd_demo)
