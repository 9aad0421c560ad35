"""Benchmarks behind `make bench`: each area a module with ``run(out_dir: Path) -> dict``.

Results are JSON (and PNG where a picture helps); speed targets are shown here,
never by timed tests. Register a module by key in BENCHES.
"""
from __future__ import annotations

import importlib
import json
import platform
import time
from pathlib import Path

BENCHES: dict[str, str] = {
    "pipeline": "lfr_tools.bench.pipeline",
    "recall": "lfr_tools.bench.recall",
    "crowd": "lfr_tools.bench.crowd",
    "evidence": "lfr_tools.bench.evidence",
    "steady": "lfr_tools.bench.steady",
    "window_scale": "lfr_tools.bench.window_scale",
    "watchlist": "lfr_tools.bench.watchlist",
    "match": "lfr_tools.bench.match",
    "peer": "lfr_tools.bench.peer",
    "audit": "lfr_tools.bench.audit",
    "mqtt": "lfr_tools.bench.mqtt",
    "console": "lfr_tools.bench.console",
    "npu_host": "lfr_tools.bench.npu_host",
}


def run_benches(out_dir: Path, only: list[str] | None = None) -> dict:
    """Run the selected benchmarks, write out_dir/<key>.json and a summary; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"machine": platform.platform(), "processor": platform.processor(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": {}}
    for key, module in BENCHES.items():
        if only and key not in only:
            continue
        result = importlib.import_module(module).run(out_dir)
        (out_dir / f"{key}.json").write_text(json.dumps(result, indent=2))
        summary["results"][key] = result
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
