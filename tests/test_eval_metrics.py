"""Open-set metric code on synthetic scores whose answers are known by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lfr_tools.evaluate import degrade, figures, metrics, protocol, report, scaling
from lfr_tools.evaluate.metrics import SearchResults


def make_results(mated_top, mated_hit, nonmated_top, mated_id=None, nonmated_id=None) -> SearchResults:
    mated_top = np.asarray(mated_top, float)
    nonmated_top = np.asarray(nonmated_top, float)
    return SearchResults(np.asarray(mated_hit, bool), mated_top,
                         np.arange(mated_top.size) if mated_id is None else np.asarray(mated_id),
                         nonmated_top,
                         np.arange(nonmated_top.size) if nonmated_id is None else np.asarray(nonmated_id))


def test_threshold_admits_exactly_the_allowed_false_alerts():
    nonmated = np.linspace(0.0, 0.99, 100)  # top score 0.99, next 0.98 ...
    t = metrics.threshold_at_fpir(nonmated, 0.01)
    assert 0.98 < t <= 0.99
    assert metrics.fpir_at(nonmated, t) == pytest.approx(0.01)
    t2 = metrics.threshold_at_fpir(nonmated, 0.05)
    assert metrics.fpir_at(nonmated, t2) == pytest.approx(0.05)
    assert 0.94 < t2 <= 0.95


def test_threshold_refused_when_too_few_nonmated_searches():
    assert metrics.threshold_at_fpir(np.zeros(999), 1e-3) is None
    assert metrics.threshold_at_fpir(np.zeros(1000), 1e-3) is not None
    assert metrics.min_nonmated_for(1 / 6000) == 6000


def test_ties_never_push_fpir_over_target():
    nonmated = np.array([0.9] * 3 + [0.1] * 97)
    t = metrics.threshold_at_fpir(nonmated, 0.01)
    assert metrics.fpir_at(nonmated, t) <= 0.01


def test_tpir_needs_rank1_and_threshold():
    r = make_results([0.9, 0.8, 0.95, -np.inf], [True, True, False, False], np.linspace(0, 0.5, 100))
    assert metrics.tpir_at(r, 0.85) == pytest.approx(0.25)   # only the first: 3rd is a wrong rank-1
    assert metrics.tpir_at(r, 0.0) == pytest.approx(0.5)
    assert metrics.rank1(r) == pytest.approx(0.5)            # the failure to acquire is a miss


def test_search_picks_best_entry_per_identity_and_skips_failed_probes():
    gallery = np.eye(3, dtype=np.float32)
    gallery_id = np.array([7, 7, 9])
    probes = np.array([[0.0, 0.9, 0.1], [0.1, 0.0, 0.8], [0, 0, 0]], np.float32)
    top_id, top = metrics.search(gallery, gallery_id, probes, np.array([True, True, False]))
    assert list(top_id) == [7, 9, -1]
    assert top[0] == pytest.approx(0.9) and top[1] == pytest.approx(0.8) and top[2] == -np.inf


def test_wilson_matches_the_textbook_value():
    lo, hi = metrics.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert metrics.wilson(0, 50)[0] == 0.0


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(1)

    def sample(n):
        mated = rng.normal(0.7, 0.1, n)
        return make_results(mated, np.ones(n, bool), rng.normal(0.2, 0.1, 5 * n),
                            mated_id=np.arange(n) // 2, nonmated_id=np.arange(5 * n))
    small, large = sample(100), sample(2000)
    for r in (small, large):
        t = metrics.threshold_at_fpir(r.nonmated_top, 0.01)
        lo, hi = metrics.bootstrap_tpir_ci(r, 0.01, reps=200)
        assert lo <= metrics.tpir_at(r, t) <= hi
    width = lambda r: np.subtract(*metrics.bootstrap_tpir_ci(r, 0.01, reps=200)[::-1])  # noqa: E731
    assert width(large) < width(small)


def test_separable_scores_give_perfect_tpir_and_det_ends_at_zero():
    r = make_results(np.full(50, 0.9), np.ones(50, bool), np.linspace(0.0, 0.5, 1000))
    s = figures.summarise(r, reps=50)
    assert s["tpir_at_fpir"]["0.01"] == 1.0 and s["tpir_at_fpir"]["0.001"] == 1.0
    assert s["tpir_at_fpir"]["0.000167"] is None
    assert "6000" in s["at_fpir"]["0.000167"]["not_reported"]
    fpir, fnir = metrics.det_curve(r)
    assert fpir.min() == 0.0 and fnir.max() == 0.0


def test_fpir_keys():
    assert [metrics.fpir_key(f) for f in (1e-2, 1e-3, 1 / 6000)] == ["0.01", "0.001", "0.000167"]


def test_per_group_rows_at_fixed_threshold():
    r = make_results([0.9, 0.3, 0.9, 0.9], [True] * 4, [0.6, 0.1, 0.1, 0.1],
                     mated_id=[0, 0, 1, 1], nonmated_id=[2, 2, 3, 3])
    rows = figures.per_group(r, ["a", "b", "c", "d"], {"a": "g1", "c": "g1", "b": "g2", "d": "g2"},
                             {"0.01": 0.5})
    assert rows["g1"]["at_threshold"]["0.01"]["tpir"]["value"] == 0.5
    assert rows["g1"]["at_threshold"]["0.01"]["fpir"]["value"] == 0.5
    assert rows["g2"]["at_threshold"]["0.01"]["tpir"]["value"] == 1.0
    assert rows["g2"]["at_threshold"]["0.01"]["fpir"]["value"] == 0.0


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_watchlist_padding_raises_fpir_and_says_so():
    rng = np.random.default_rng(3)
    dim = 16
    gallery = _unit(rng.normal(size=(5, dim)))
    mated = scaling.Probes(_unit(gallery + 0.05 * rng.normal(size=gallery.shape)), np.ones(5, bool), np.arange(5))
    nonmated = scaling.Probes(_unit(rng.normal(size=(200, dim))), np.ones(200, bool), np.arange(200) + 10)
    padding = _unit(rng.normal(size=(300, dim)))
    out = scaling.fpir_vs_size([3, 100, 1000], gallery, np.arange(5), padding, mated, nonmated, {"0.01": 0.6})
    small, mid, big = out["rows"]
    assert small["entries"] == 3 and small["padding_entries"] == 0
    assert mid["entries"] == 100 and mid["padding_entries"] == 95 and mid["reached"]
    assert big["entries"] == 305 and not big["reached"]
    assert big["at_threshold"]["0.01"]["fpir"]["value"] >= small["at_threshold"]["0.01"]["fpir"]["value"]
    assert mid["at_threshold"]["0.01"]["tpir"]["value"] == 1.0
    assert scaling.predicted_fpir(0.001, 1000) == pytest.approx(1 - 0.999 ** 1000)


def test_split_is_deterministic_and_roughly_half():
    names = [f"Person_{i}" for i in range(2000)]
    sides = [protocol.split_of(n) for n in names]
    assert sides == [protocol.split_of(n) for n in names]
    assert 900 < sides.count("test") < 1100


def test_build_splits_assigns_gallery_mated_and_nonmated(tmp_path):
    table = {"A": [tmp_path / "a1.jpg", tmp_path / "a2.jpg", tmp_path / "a3.jpg"], "B": [tmp_path / "b1.jpg"]}
    table.update({f"P{i}": [tmp_path / f"p{i}_{k}.jpg" for k in range(2 + i % 2)] for i in range(40)})
    splits = protocol.build_splits(table, gallery_per_id=2)
    everything = [p for s in splits.values() for p in s.all_paths()]
    assert sorted(everything) == sorted(p for v in table.values() for p in v)   # nothing lost
    side = splits[protocol.split_of("A")]
    assert ("A", tmp_path / "a3.jpg") in side.mated and ("A", tmp_path / "a1.jpg") in side.gallery
    assert ("B", tmp_path / "b1.jpg") in splits[protocol.split_of("B")].nonmated


def test_groups_file_parsing_and_errors(tmp_path):
    good = tmp_path / "g.csv"
    good.write_text("identity,group\nA,x\nB,y\n")
    assert protocol.load_groups(good) == {"A": "x", "B": "y"}
    bad = tmp_path / "bad.csv"
    bad.write_text("A\n")
    with pytest.raises(protocol.InputError, match="identity,group"):
        protocol.load_groups(bad)


def test_degradations_keep_shape_and_do_what_they_say():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (250, 250, 3)), 0, 255).astype(np.uint8)
    for name in degrade.DEGRADATIONS:
        out = degrade.apply(name, image, seed=5)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out, degrade.apply(name, image, seed=5))        # repeatable
    assert degrade.apply("low_light", image).mean() < 0.5 * image.mean()
    sharp = lambda x: np.abs(np.diff(x.astype(float), axis=1)).mean()  # noqa: E731
    assert sharp(degrade.apply("small_face_24", image)) < sharp(degrade.apply("small_face_48", image)) < sharp(image)
    assert sharp(degrade.apply("motion_blur", image)) < 0.7 * sharp(image)


def test_report_json_is_strict(tmp_path):
    assert report._clean_json({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)]}) == \
        {"a": None, "b": [0.5, 3]}
    json.dumps(report._clean_json({"x": np.inf}), allow_nan=False)
