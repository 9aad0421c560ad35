"""A small open-set eval on lfw-dev: ranges that a broken alignment, normalisation or threshold fails."""
from __future__ import annotations

import json

import pytest

from lfr_tools.evaluate.run import EvalOptions, run_eval

from eval_helpers import eval_engine, lfw_dev_or_skip

pytestmark = [pytest.mark.dataset, pytest.mark.slow]


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory):
    dataset = lfw_dev_or_skip()
    out = tmp_path_factory.mktemp("eval")
    groups = {p.name: f"g{len(p.name) % 2}" for p in dataset.iterdir()}  # arbitrary, for the rows
    opts = EvalOptions(max_identities=360, max_images_per_id=3, degradations=("small_face_24",),
                       watchlist_sizes=(50, 400), bootstrap_reps=100, progress=False, groups=groups)
    run_eval(dataset, out, eval_engine(), opts)
    return out, json.loads((out / "eval.json").read_text())


def test_small_eval_accuracy_in_range(small_eval):
    _, doc = small_eval
    assert doc["protocol"]["splits"]["test"]["nonmated_probes"] >= 100
    assert doc["tpir_at_fpir"]["0.01"] > 0.8
    assert doc["test"]["rank1"] > 0.9
    assert doc["test"]["fta"]["probes"]["value"] < 0.05
    lo, hi = doc["test"]["at_fpir"]["0.01"]["ci95"]
    assert lo <= doc["tpir_at_fpir"]["0.01"] <= hi


def test_small_eval_threshold_is_a_cosine_in_a_sane_band(small_eval):
    _, doc = small_eval
    t = doc["thresholds"]["0.01"]
    assert 0.2 < t < 0.8          # unnormalised vectors or a broken aligner move this far out
    cal = doc["test"]["at_calibrated_threshold"]["0.01"]
    assert cal["fpir"]["value"] < 0.06   # the calibration threshold carries over to test identities


def test_small_eval_writes_card_det_and_degradation_rows(small_eval):
    out, doc = small_eval
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TPIR" in (out / "card.md").read_text()
    small = doc["degradations"]["small_face_24"]
    assert small["rank1"] <= doc["test"]["rank1"] + 0.02
    assert [r["requested"] for r in doc["watchlist_size"]["rows"]] == [50, 400]
    assert doc["watchlist_size"]["rows"][1]["padding_entries"] > 0


def test_small_eval_has_per_group_rows_covering_every_search(small_eval):
    _, doc = small_eval
    rows = doc["groups"]
    assert set(rows) == {"g0", "g1", "(no group)"}
    test = doc["test"]["searches"]
    assert rows["g0"]["mated"] + rows["g1"]["mated"] == test["mated"]
    assert rows["g0"]["nonmated"] + rows["g1"]["nonmated"] == test["nonmated"]
    assert 0.0 <= rows["g0"]["at_threshold"]["0.01"]["fpir"]["value"] <= 1.0
