"""The search plan's motion prior: a tile flags change no live track explains, and the plan searches
it sooner; noise, exposure changes and tracked heads flag nothing."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.config import ConfigError, parse_config
from appliance.vision.detect import plan_regions
from appliance.vision.motion import MotionMap
from appliance.vision.plan import PlanSettings, SearchPlan

W, H = 1280, 720
REGIONS = plan_regions(W, H, (320,), 0.25, False)


def _scene(head_x: int | None, grey: int = 90, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A textured grey street with a 60 px bright head at (head_x, 300), optionally noisy."""
    rng = np.random.default_rng(seed)
    frame = np.full((H, W, 3), grey, np.float32)
    frame += (np.indices((H, W)).sum(0) % 37)[..., None] * 0.5  # fixed texture: the background does not move
    if head_x is not None:
        frame[300:360, head_x:head_x + 60] = grey + 70
    if noise:
        frame += rng.normal(0, noise, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _flagged(moved: np.ndarray) -> set[int]:
    return {int(i) for i in np.flatnonzero(moved)}


def _holding(x: int, y: int) -> set[int]:
    return {i for i, r in enumerate(REGIONS) if r.x <= x < r.x + r.size and r.y <= y < r.y + r.size}


def test_a_head_moving_where_no_track_is_flags_the_tiles_around_it_and_only_those():
    motion = MotionMap()
    assert not motion.moved(_scene(600), [], REGIONS).any(), "the first frame has nothing to compare with"
    moved = motion.moved(_scene(612), [], REGIONS)
    assert _flagged(moved), "a head that moved 12 px must flag a tile"
    assert _flagged(moved) <= _holding(600, 300) | _holding(672, 360), "only tiles around the head"


def test_a_tracked_head_explains_its_change():
    motion = MotionMap()
    motion.moved(_scene(600), [], REGIONS)
    face = np.array([615.0, 310.0, 655.0, 350.0])  # the track's predicted face box inside the head
    assert not motion.moved(_scene(612), [face], REGIONS).any()


def test_a_still_scene_sensor_noise_and_an_exposure_change_flag_nothing():
    motion = MotionMap()
    motion.moved(_scene(600, noise=6.0, seed=1), [], REGIONS)
    assert not motion.moved(_scene(600, noise=6.0, seed=2), [], REGIONS).any(), "night noise is not motion"
    assert not motion.moved(_scene(600, grey=110, noise=6.0, seed=3), [], REGIONS).any(), "nor a gain change"


def test_a_new_stream_or_frame_size_starts_afresh():
    motion = MotionMap()
    motion.moved(_scene(600), [], REGIONS)
    motion.reset()
    assert not motion.moved(_scene(700), [], REGIONS).any()
    motion.moved(_scene(600), [], REGIONS, seq=7)
    assert not motion.moved(_scene(700), [], REGIONS, seq=0).any(), "a sequence starting again is a new stream"
    small = plan_regions(640, 360, (320,), 0.25, False)
    assert not motion.moved(np.zeros((360, 640, 3), np.uint8), [], small).any()


class Clock:
    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


def _plan(clock: Clock, boost_s: float) -> SearchPlan:
    plan = SearchPlan(PlanSettings(budget_fraction=1.0, frame_budget_s=0.02, workers=1, cpus=1,
                                   motion_boost_s=boost_s), lambda: 0.0, clock)
    plan.costs.observe(("full", 192), 0.010)
    return plan


def _frame(plan: SearchPlan, clock: Clock, seq: int, moved=None) -> list[int]:
    clock.t += 0.1
    choice = plan.choose(seq, [(320, ("full", 192))] * 6, [], moved=moved)
    plan.done(choice)
    return choice.tiles


def test_the_plan_searches_a_tile_that_moved_before_staler_still_ones_then_forgets_the_flag():
    clock = Clock()
    plan = _plan(clock, boost_s=0.5)
    for seq in range(3):  # two tiles a frame: every tile searched once, 0-1 first
        _frame(plan, clock, seq)
    flags = [False, False, False, False, False, True]  # tile 5, searched last, moved
    assert _frame(plan, clock, 3, flags) == [5, 0], "the moved tile first, then the stalest"
    assert 5 not in _frame(plan, clock, 4, [False] * 6), "searched: its flag is spent"


def test_the_boost_is_bounded_a_still_tile_still_gets_its_turn():
    clock = Clock()
    plan = _plan(clock, boost_s=0.15)
    for seq in range(3):
        _frame(plan, clock, seq)
    always = [False, False, True, True, True, True]  # tiles 2-5 move every frame
    seen = set()
    for seq in range(3, 9):
        seen.update(_frame(plan, clock, seq, always))
    assert {0, 1} <= seen, "tiles that never move are still searched, at most boost_s later"


def test_without_a_boost_the_flags_change_nothing():
    clock = Clock()
    plan = _plan(clock, boost_s=0.0)
    for seq in range(3):
        _frame(plan, clock, seq)
    assert _frame(plan, clock, 3, [False] * 5 + [True]) == [0, 1]


def test_motion_boost_is_a_deadline_key(tmp_path):
    with pytest.raises(ConfigError, match="only apply to search_plan"):
        parse_config({"detect": {"search_plan": "fixed", "motion_boost_s": 0.5}}, tmp_path / "a.toml")
    assert parse_config({}, tmp_path / "a.toml").detect.motion_boost_s > 0


def test_the_detector_tells_the_plan_what_moved(monkeypatch):
    """FaceDetector passes the motion map's flags for its own regions to the plan."""
    from appliance.vision import detect

    seen = {}

    class Plan:
        def choose(self, seq, layout, focus, paced, moved):
            seen["moved"], seen["tiles"] = moved, len(layout)
            raise StopIteration

    class Net:
        model = spec = anchors = None

    detector = detect.FaceDetector([(Net(), Net())], detect.SearchSettings(tile_sizes=(320,), whole_frame=False),
                                   Plan(), MotionMap())
    monkeypatch.setattr(detect, "_cost_key", lambda net: ("n", 128))
    for seq, x in enumerate((600, 640)):
        with pytest.raises(StopIteration):
            detector.detect(_scene(x), seq, [])
    assert seen["tiles"] == len(REGIONS) and len(seen["moved"]) == len(REGIONS)
    assert _flagged(seen["moved"]) and _flagged(seen["moved"]) <= _holding(600, 300) | _holding(700, 360)


def test_an_unpaced_replay_ages_tiles_in_frames_so_its_windows_do_not_depend_on_the_machine():
    runs = []
    for wall_per_frame in (0.01, 0.4):  # a fast and a slow machine
        clock = Clock()
        plan = _plan(clock, boost_s=0.05)
        tiles = []
        for seq in range(12):
            flags = [seq % 3 == 0, False, False, seq % 4 == 0, False, True]
            choice = plan.choose(seq, [(320, ("full", 192))] * 6, [], paced=False, moved=flags)
            clock.t += wall_per_frame
            plan.done(choice)
            tiles.append(choice.tiles)
        runs.append(tiles)
    assert runs[0] == runs[1]
