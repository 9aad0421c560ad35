"""Under a CPU hog taking half the machine the search plan still alerts, reports lower coverage
(fewer windows a frame, more overdue tiles left out, a worse staleness guarantee), and no queue grows
without bound. The visible faces found do not rise under the hog; since shared focus windows and the
motion prior they often do not fall either (focus windows come first, so tracked faces stay found:
the hog costs discovery, which the staleness figure reports).

A crowd clip composed from lfw-dev is replayed paced at 15 frames/s through the real unit twice,
calm and with a subprocess spinning one of the two cores; the assertions are on counters.
"""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

import pytest

from appliance.config import Config
from appliance.vision.engine import FaceEngine
from lfr_tools.bench.crowd import run_clip
from lfr_tools.crowd import CrowdShape, compose_crowd

SHAPE = CrowdShape("hog-1080p", (1920, 1080), 5.0, 16, 3, (36, 64))


@contextmanager
def cpu_hog() -> Iterator[subprocess.Popen]:
    """A subprocess spinning one core until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def clip(engine, lfw, tmp_path_factory):
    """The seed-fixed crowd clip (16 walkers, 3 listed, 75 frames)."""
    return compose_crowd(lfw, tmp_path_factory.mktemp("crowd"), SHAPE, seed=5, engine=engine)


def _run(clip, workdir) -> tuple[dict, dict]:
    """The bench's figures and the plan's counters for one paced run on a fresh engine."""
    with FaceEngine.from_config(Config()) as engine:
        row = run_clip(engine, clip, workdir)
        return row, engine.search_counters()


def _windows_per_frame(plan: dict) -> float:
    return (plan["plan_focus_windows"] + plan["plan_discovery_windows"]) / max(plan["plan_frames"], 1)


def test_under_a_cpu_hog_the_plan_still_alerts_reports_lower_coverage_and_no_queue_grows(clip, tmp_path):
    calm, calm_plan = _run(clip, tmp_path / "calm")
    with cpu_hog():
        hogged, hog_plan = _run(clip, tmp_path / "hog")
    assert hogged["listed_alerted"] >= 1, "the plan still alerts under the hog"
    assert hogged["false_alerts"] == 0
    seen = {"calm": (calm["coverage"], calm_plan), "hog": (hogged["coverage"], hog_plan)}
    assert _windows_per_frame(hog_plan) < 0.85 * _windows_per_frame(calm_plan), seen
    assert hog_plan["plan_windows_skipped"] > calm_plan["plan_windows_skipped"], seen
    assert hog_plan["plan_staleness_max_ms"] > calm_plan["plan_staleness_max_ms"], seen
    assert hogged["coverage"] <= calm["coverage"], seen
    for row, plan in ((calm, calm_plan), (hogged, hog_plan)):
        # every frame was processed or counted as dropped: the queues hold a frame each, nothing piles up
        assert row["frames"] + row["frames_dropped"] == SHAPE.frames
        assert plan["plan_frames"] == row["frames"]
