"""The benchmarks' PNG companions render from the JSON they sit beside (figures are `make bench`'s job)."""
from __future__ import annotations

import json

import cv2
import pytest

from lfr_tools.bench import match
from lfr_tools.bench.plots import match_png, pipeline_png

pytest.importorskip("matplotlib", reason="matplotlib comes with the dev extra: pip install -e '.[dev]'")


def test_match_bench_rows_agree_with_the_fp32_scan_and_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(match, "SIZES", (500, 2000))
    rows = [match.time_watchlist(n, probes=20) for n in match.SIZES]
    assert all(r["same_top1_as_fp32_scan"] == 1.0 and r["max_score_difference"] < 1e-5 for r in rows)
    result = {"target_ms_per_probe": match.TARGET_MS, "rows": rows}
    json.dumps(result)  # the bench's record must serialise
    match_png(tmp_path / "match.png", result)
    image = cv2.imread(str(tmp_path / "match.png"))
    assert image is not None and image.shape[0] > 200


def test_pipeline_png_draws_stages_and_the_latency_histogram(tmp_path):
    stages = {"detect": {"p50_ms": 50.0, "p99_ms": 70.0}, "embed": {"p50_ms": 20.0, "p99_ms": 30.0}}
    result = {"clip": "test", "runs": [{"resolution": "1280x720", "stages_ms": stages}],
              "capture_to_alert": {"clips": {"1280x720_5faces": {"alerts": 3, "p99_ms": 90.0,
                                                                  "latencies_ms": [70.0, 80.0, 90.0]}}}}
    pipeline_png(tmp_path / "pipeline.png", result)
    assert cv2.imread(str(tmp_path / "pipeline.png")).shape[1] > 600
