"""The self-test table (rich) and its JSON form."""
from __future__ import annotations

import json
from typing import TextIO

from rich.console import Console
from rich.table import Table

from .base import CheckResult, Outcome

STYLE = {Outcome.PASS: "green", Outcome.WARN: "yellow", Outcome.FAIL: "bold red"}


def render_table(results: list[CheckResult], verdict: Outcome, stream: TextIO | None = None) -> None:
    """Print the PASS / WARN / FAIL table, each row with what was seen and, unless passed, the fix."""
    table = Table(title="appliance selftest", show_lines=True, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("seen")
    table.add_column("fix")
    for row in results:
        table.add_row(row.name, f"[{STYLE[row.outcome]}]{row.outcome.name}[/]", row.detail, row.fix)
    console = Console(file=stream, width=140, soft_wrap=False)
    console.print(table)
    counts = {o.name: sum(r.outcome is o for r in results) for o in Outcome}
    console.print(f"selftest: [{STYLE[verdict]}]{verdict.name}[/] "
                  f"({counts['PASS']} pass, {counts['WARN']} warn, {counts['FAIL']} fail)")


def as_json(results: list[CheckResult], verdict: Outcome, unit_id: str) -> str:
    """The results as one JSON document (for the commissioning record and scripts)."""
    return json.dumps({"unit": unit_id, "verdict": verdict.name,
                       "checks": [r.as_json() for r in results]}, indent=2)
