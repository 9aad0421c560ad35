"""`appliance bench`: run the benchmarks and write JSON (and PNG) results."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lfr_tools.bench import BENCHES, run_benches


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmarks named (default: all) and print the summary JSON."""
    summary = run_benches(Path(args.out), args.only or None)
    print(json.dumps(summary["results"], indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the bench command."""
    p = sub.add_parser("bench", help="run benchmarks, write JSON results")
    p.add_argument("--out", default="bench-results", help="output folder")
    p.add_argument("--only", nargs="*", choices=sorted(BENCHES) or None, help="run only these")
    p.set_defaults(func=cmd_bench)
