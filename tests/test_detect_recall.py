"""Detector recall on composed 1920x1080 crowd scenes with known boxes (issue 2 acceptance)."""
from __future__ import annotations

import json

import numpy as np

from lfr_tools.bench.recall import HEIGHTS, measure_recall
from appliance.vision.blazeface import FULL_RANGE, SHORT_RANGE, make_anchors
from appliance.vision.detect import plan_regions


def test_anchor_counts_match_the_model_outputs():
    assert make_anchors(SHORT_RANGE).shape == (896, 2)
    assert make_anchors(FULL_RANGE).shape == (2304, 2)
    assert np.all((make_anchors(FULL_RANGE) > 0) & (make_anchors(FULL_RANGE) < 1))


def test_tiles_cover_every_pixel_of_a_1080p_frame():
    covered = np.zeros((1080, 1920), bool)
    for r in plan_regions(1920, 1080, (320,), 0.25, whole_frame=False):
        covered[r.y:r.y + r.size, r.x:r.x + r.size] = True
    assert covered.all()


def test_recall_at_32px_and_up_is_at_least_90_percent(engine, lfw, tmp_path):
    rows = measure_recall(engine, lfw, scenes=2)
    print(json.dumps(rows, indent=1))
    assert [r["face_height_px"] for r in rows] == list(HEIGHTS)
    for row in rows:
        if row["face_height_px"] >= 32:
            assert row["recall"] >= 0.90, row
    assert rows[0]["recall"] >= 0.5, "24 px recall collapsed: the tile pyramid is broken"
