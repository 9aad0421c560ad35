"""The deadline search plan, on a fake clock: focus first, the budget respected, stalest tiles
first, staleness computed right, overload counted; its pool and config keys."""
from __future__ import annotations

import threading
import time

import pytest

from appliance.config import ConfigError, parse_config
from appliance.vision.plan import CostModel, FrameRate, PlanSettings, SearchPlan, TileAges
from appliance.vision.pool import WindowPool

FULL, FOCUS = ("full", 192), ("short", 128)


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _plan(clock: FakeClock, reserve: float = 0.0, **kw) -> SearchPlan:
    settings = PlanSettings(**{"budget_fraction": 1.0, "frame_budget_s": 0.1, "min_discovery": 1,
                               "workers": 1, "cpus": 1, **kw})
    plan = SearchPlan(settings, lambda: reserve, clock)
    plan.costs.observe(FULL, 0.010)
    plan.costs.observe(FOCUS, 0.005)
    return plan


def _layout(n: int, size: int = 320) -> list[tuple[int, tuple]]:
    return [(size, FULL)] * n


def _search(plan: SearchPlan, clock: FakeClock, seq: int, layout, focus=(), window_s: float = 0.0):
    """Plan frame ``seq``, let every window take ``window_s`` on the fake clock, record it."""
    choice = plan.choose(seq, layout, [(f, FOCUS) for f in focus])
    clock.t += window_s * (len(choice.focus) + len(choice.tiles))
    plan.done(choice)
    return choice


def test_focus_windows_come_first_and_discovery_gets_what_is_left():
    clock = FakeClock()
    choice = _plan(clock).choose(0, _layout(20), [(f"track{i}", FOCUS) for i in range(4)])
    assert choice.focus == ["track0", "track1", "track2", "track3"]
    assert len(choice.tiles) == 8, "100 ms - 4 x 5 ms of focus leaves 8 tiles of 10 ms"


def test_the_budget_is_respected_and_only_the_floor_goes_over_it():
    clock = FakeClock()
    plan = _plan(clock, min_discovery=2)
    choice = plan.choose(0, _layout(40), [(f"t{i}", FOCUS) for i in range(30)])
    assert len(choice.focus) == 20 and choice.planned_s == pytest.approx(0.1 + 0.02)
    assert len(choice.tiles) == 2, "the floor of discovery windows is searched even when focus took it all"
    assert plan.counters["plan_windows_skipped"] == 10, "focus windows left out are counted"


def test_the_reserve_and_the_workers_bound_the_budget():
    clock = FakeClock()
    assert _plan(clock, reserve=0.03).budget(0.1) == pytest.approx(0.07)
    two = _plan(clock, reserve=0.03, workers=2, cpus=2)
    assert two.budget(0.1) == pytest.approx(0.17), "two CPUs less the embed/match reserve"
    assert _plan(clock, workers=2, cpus=4).budget(0.1) == pytest.approx(0.2), "no more than the workers can run"
    assert _plan(clock, reserve=0.5).budget(0.1) == 0.0


def test_measured_costs_change_how_much_fits():
    clock = FakeClock()
    plan = _plan(clock)
    for _ in range(30):
        plan.ran(FULL, 0.025)
    assert len(plan.choose(0, _layout(20), []).tiles) == 4


def test_the_stalest_tiles_are_searched_first_and_every_tile_in_turn():
    clock = FakeClock()
    plan, layout = _plan(clock), _layout(25)
    searched = []
    for seq in range(3):
        clock.t += 0.1
        searched.append(_search(plan, clock, seq, layout, window_s=0.01).tiles)
    assert searched[0] == list(range(10)) and set(searched[1]) == set(range(10, 20))
    assert set(searched[2]) == set(range(20, 25)) | set(range(5)), "never searched first, then the oldest"


def test_smaller_tiles_win_a_tie():
    clock = FakeClock()
    layout = [(1920, FULL), (768, FULL), (320, FULL), (320, FULL)]
    plan = _plan(clock, frame_budget_s=0.02)
    assert plan.choose(0, layout, []).tiles == [2, 3]


def test_staleness_is_the_oldest_smallest_tile_and_its_worst_is_kept():
    clock = FakeClock()
    ages = TileAges([320, 320, 768], now=0.0)
    ages.searched([0], 1.0)
    assert ages.staleness(2.5) == pytest.approx(2.5, abs=0.01), "tile 1 was never searched since the start"
    ages.searched([1], 2.0)
    assert ages.staleness(2.5) == pytest.approx(1.5), "the 768 tile (never searched) does not count"
    plan, layout = _plan(clock, frame_budget_s=0.02), _layout(6)
    for seq in range(6):
        clock.t += 0.08  # and 20 ms of windows: a frame every 100 ms
        _search(plan, clock, seq, layout, window_s=0.01)
    assert plan.counters["plan_staleness_ms"] == 300, "two tiles a frame, six tiles: each waits 3 frames"
    assert plan.counters["plan_staleness_max_ms"] == 300


def test_an_overloaded_frame_is_counted_and_overdue_tiles_left_out_too():
    clock = FakeClock()
    plan, layout = _plan(clock, coverage_target_s=0.25), _layout(30)
    planned = [len(_search(plan, clock, seq, layout, window_s=0.02).tiles) for seq in range(4)]  # twice the cost
    assert plan.counters["plan_frames_over_budget"] == 3 and planned == [10, 8, 6, 5], "overruns cut the budget"
    assert plan.counters["plan_windows_skipped"] > 0
    assert plan.counters["plan_staleness_max_ms"] > 250


def test_an_idle_frame_is_not_over_budget():
    clock = FakeClock()
    plan = _plan(clock)
    _search(plan, clock, 0, _layout(5), window_s=0.001)
    assert plan.counters["plan_frames_over_budget"] == 0 and plan.counters["plan_windows_skipped"] == 0


def test_the_frame_rate_ignores_dropped_frames_and_an_unpaced_replay_uses_the_nominal_rate():
    rate = FrameRate(1 / 15)
    for i in range(60):
        rate.observe(i * 3, i * 0.1)  # 10 frames/s seen, two of every three dropped
    assert rate.interval_s == pytest.approx(1 / 30, rel=0.05)
    clock = FakeClock()
    plan = _plan(clock, frame_budget_s=0.0, nominal_interval_s=0.2)
    for seq in range(80):
        clock.t += 0.01
        plan.interval(seq, clock())
    assert plan.interval(80, clock.t + 0.01) == pytest.approx(0.01, rel=0.05)
    assert plan.interval(81, clock.t + 0.02, paced=False) == 0.2


def test_cost_model_starts_from_a_guess_and_follows_measurements():
    costs = CostModel(initial_s=0.5)
    assert costs.estimate("x") == 0.5
    costs.observe("x", 0.01)
    for _ in range(50):
        costs.observe("x", 0.02)
    assert costs.estimate("x") == pytest.approx(0.02, rel=0.01)


def test_the_pool_gives_each_job_a_slot_no_other_job_holds():
    held: set[str] = set()
    lock = threading.Lock()

    def run(slot: str, job: int) -> int:
        with lock:
            assert slot not in held
            held.add(slot)
        time.sleep(0.002)
        with lock:
            held.discard(slot)
        return job * 2

    pool = WindowPool(["a", "b"])
    try:
        assert pool.map(run, list(range(20))) == [2 * j for j in range(20)]
    finally:
        pool.close()


def test_config_refuses_deadline_keys_on_the_fixed_plan_and_nonsense_budgets(tmp_path):
    with pytest.raises(ConfigError, match="only apply to search_plan"):
        parse_config({"detect": {"search_plan": "fixed", "frame_budget_ms": 50.0}}, tmp_path / "a.toml")
    with pytest.raises(ConfigError, match="budget_fraction"):
        parse_config({"detect": {"budget_fraction": 0.0}}, tmp_path / "a.toml")
    with pytest.raises(ConfigError, match="workers"):
        parse_config({"detect": {"workers": 0}}, tmp_path / "a.toml")
    cfg = parse_config({"detect": {"search_plan": "fixed", "discovery_windows": 4}}, tmp_path / "a.toml")
    assert cfg.detect.discovery_windows == 4


def test_a_new_stream_is_planned_afresh():
    clock = FakeClock()
    plan, layout = _plan(clock, frame_budget_s=0.02), _layout(6)
    for seq in range(6):
        clock.t += 0.1
        _search(plan, clock, seq, layout)
    clock.t += 60.0  # the next clip, a minute later
    _search(plan, clock, 0, layout)
    assert plan.counters["plan_staleness_max_ms"] < 300, "the pause between streams is no unsearched time"


def test_after_an_overrun_frames_finishing_early_grow_the_budget_back_only_when_it_left_windows_out():
    clock = FakeClock()
    plan = _plan(clock)
    _search(plan, clock, 0, _layout(40), window_s=0.02)  # an overrun: cut to 0.8
    for seq in range(1, 4):
        _search(plan, clock, seq, _layout(5), window_s=0.001)  # everything fitted
    assert plan.gain == pytest.approx(0.8)
    for seq in range(4, 6):
        _search(plan, clock, seq, _layout(40), window_s=0.005)  # half the estimate, windows left out
    assert plan.gain == pytest.approx(0.8 * 1.1 ** 2)
    for seq in range(6, 12):
        _search(plan, clock, seq, _layout(40), window_s=0.005)
    assert plan.gain == 1.0, "never above the estimate: the embed/match reserve stays"


def test_an_unpaced_replay_gets_the_same_windows_whatever_the_machine_measured():
    chosen = []
    for window_cost in (0.001, 0.05):
        clock = FakeClock()
        plan = _plan(clock, frame_budget_s=0.0, nominal_interval_s=0.1, reserve=0.05)
        for _ in range(20):
            plan.ran(FULL, window_cost)
        plan.gain = 0.25  # as after overruns
        chosen.append(plan.choose(0, _layout(40), [(f"t{i}", FOCUS) for i in range(4)], paced=False))
    assert chosen[0].tiles == chosen[1].tiles
    assert len(chosen[0].tiles) == 23, "100 ms - 4 x 1.8 ms of focus, 4 ms a tile"
    assert chosen[0].focus == chosen[1].focus == ["t0", "t1", "t2", "t3"]
