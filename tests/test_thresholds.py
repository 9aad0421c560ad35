"""Thresholds that follow the watchlist's size (G7): the card's rule, the floor, and deployment start."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.thresholds import ListSizeRule, choose, rule_for, unit_model_id
from watchlist_helpers import MODEL_ID, make_unit, seal, synthetic_entries, write_bundle


def toy_rule() -> ListSizeRule:
    """p(T) falling tenfold every 0.05 from 1e-1 at 0.3."""
    grid = np.round(np.arange(0.3, 1.0001, 0.01), 3)
    return ListSizeRule("toy@0", grid, -1.0 - (grid - 0.3) / 0.05, 1e-3, 100)


def test_expected_fpir_is_the_independence_model():
    rule = toy_rule()
    p = rule.entry_fmr(0.5)
    assert p == pytest.approx(1e-5, rel=1e-6)
    assert rule.expected_fpir(0.5, 1000) == pytest.approx(1 - (1 - 1e-5) ** 1000, rel=1e-9)


def test_threshold_for_a_list_is_the_lowest_within_target():
    rule = toy_rule()
    for size in (100, 1000, 10000):
        t = rule.threshold_for(size)
        assert rule.expected_fpir(t, size) <= 1e-3 < rule.expected_fpir(t - 2e-4, size)
    # p = 1e-3 / N, so T moves 0.05 per tenfold list
    assert rule.threshold_for(10000) - rule.threshold_for(100) == pytest.approx(0.10, abs=2e-3)


def test_a_list_smaller_than_the_card_gets_the_floor():
    rule = toy_rule()
    assert rule.threshold_for(5) == rule.threshold_for(100) == rule.floor


def test_the_card_ships_a_rule_for_the_unit_model():
    rule = rule_for(unit_model_id())
    t100, t1k, t10k = (rule.threshold_for(n) for n in (100, 1000, 10000))
    assert 0.3 < t100 < t1k < t10k < 0.95
    assert rule.floor == t100


def test_10000_entries_get_a_higher_threshold_than_100():
    small, large = choose(MODEL_ID, 100), choose(MODEL_ID, 10000)
    assert large.threshold > small.threshold
    assert small.source == large.source == "card"
    assert small.expected_fpir <= 1e-3 and large.expected_fpir <= 1e-3


def test_configured_threshold_too_low_for_the_list_names_its_expected_fpir():
    rule_t = choose(MODEL_ID, 10000).threshold
    with pytest.raises(ConfigError, match=r"expected FPIR of \d+\.\d\d% on this 10000-entry watchlist") as exc:
        choose(MODEL_ID, 10000, configured=rule_t - 0.02)
    assert f"{rule_t:.3f}" in exc.value.fix
    higher = choose(MODEL_ID, 10000, configured=rule_t + 0.01)
    assert higher.source == "configured" and higher.expected_fpir < 1e-3


@pytest.mark.parametrize("value", [-1.0, 0.0, 0.3])
def test_config_refuses_a_threshold_below_the_floor(tmp_path, value):
    with pytest.raises(ConfigError, match="threshold"):
        parse_config({"match": {"threshold": value}}, tmp_path / "a.toml")


def test_config_has_no_floor_key(tmp_path):
    with pytest.raises(ConfigError, match="match.threshold_floor': unknown key"):
        parse_config({"match": {"threshold_floor": -1.0}}, tmp_path / "a.toml")


def test_config_accepts_the_floor_and_above(tmp_path):
    floor = rule_for(unit_model_id()).floor
    assert parse_config({"match": {"threshold": round(floor + 1e-3, 4)}}, tmp_path / "a.toml").match.threshold
    assert parse_config({}, tmp_path / "a.toml").match.threshold is None


def _start(unit, tmp_path, count, version, **kwargs):
    path = write_bundle(tmp_path / f"b{version}", seal(unit, unit.authority_dir, synthetic_entries(count, version),
                                                       version=version))
    dep = unit.deployment(**kwargs)
    return dep, dep.start(path, "Test Yard")


def _loads(unit) -> list[dict]:
    return [fields for name, fields in unit.events if name == "watchlist_load"]


def test_deployment_start_takes_the_threshold_for_the_bundle_size_and_audits_it(tmp_path):
    unit = make_unit(tmp_path)
    dep, _ = _start(unit, tmp_path, 100, 1)
    small = dep.threshold
    assert dep.current_watchlist().threshold == small.threshold
    assert dep.status()["threshold"]["expected_fpir"] == small.expected_fpir
    dep.end()
    dep, _ = _start(unit, tmp_path, 10000, 2)
    assert dep.threshold.threshold > small.threshold
    loads = _loads(unit)
    assert [e["entry_count"] for e in loads] == [100, 10000]
    assert loads[1]["threshold"] == round(dep.threshold.threshold, 4) > loads[0]["threshold"]
    assert loads[1]["threshold_source"] == "card" and 0 < loads[1]["expected_fpir"] <= 1e-3


def test_deployment_start_refuses_a_configured_threshold_too_low_for_the_list(tmp_path):
    unit = make_unit(tmp_path)
    floor = rule_for(MODEL_ID).floor
    with pytest.raises(ConfigError, match=r"expected FPIR of .*% on this 10000-entry watchlist"):
        _start(unit, tmp_path, 10000, 1, configured_threshold=floor)
    refused = [f for name, f in unit.events if name == "watchlist_refused"]
    assert refused and "expected FPIR" in refused[0]["reason"]
    assert "watchlist_load" not in unit.event_types() and unit.deployment().records.active() is None
    dep, _ = _start(unit, tmp_path, 100, 2, configured_threshold=floor)  # the floor suits a 100-entry list
    assert dep.threshold.source == "configured" and dep.threshold.threshold == floor
