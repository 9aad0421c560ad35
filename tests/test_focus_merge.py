"""Focus windows shared by tracks close together: every face keeps a window that holds it with
margin, no window outgrows its smallest face's limit, and on composed groups the short-range
model still finds every face with fewer windows."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.vision.detect import FOCUS_SCALE, FaceDetector, SearchSettings, focus_region, focus_regions
from lfr_tools.scenes import background, paste

W, H = 1920, 1080


def _box(x: float, y: float, side: float) -> np.ndarray:
    return np.array([x, y, x + side, y + side])


def _holds(region, box: np.ndarray, margin: float = 0.0) -> bool:
    return bool(region.x <= box[0] - margin and region.y <= box[1] - margin
                and box[2] + margin <= region.x + region.size and box[3] + margin <= region.y + region.size)


def test_two_faces_side_by_side_share_one_window_with_the_usual_margin():
    a, b = _box(900, 500, 40), _box(950, 505, 40)
    [window] = focus_regions([a, b], W, H, merge_scale=5.0)
    margin = (FOCUS_SCALE - 1) / 2 * 40 - 1  # the single-track window's margin, less rounding
    assert _holds(window, a, margin) and _holds(window, b, margin)
    assert window.size <= 5.0 * 40


def test_faces_far_apart_or_of_very_different_sizes_keep_their_own_windows():
    far = [_box(100, 500, 40), _box(600, 500, 40)]
    assert len(focus_regions(far, W, H, 5.0)) == 2
    small_by_big = [_box(900, 500, 28), _box(935, 500, 64)]  # together: 5.3x the small face
    assert len(focus_regions(small_by_big, W, H, 5.0)) == 2


def test_without_merging_each_track_gets_the_single_window_in_order():
    boxes = [_box(900, 500, 40), _box(950, 505, 40), _box(100, 100, 60)]
    assert focus_regions(boxes, W, H, 0.0) == [focus_region(b, W, H) for b in boxes]
    merged = focus_regions(boxes, W, H, 5.0)
    assert len(merged) == 2 and _holds(merged[1], boxes[2]), "a window takes its first track's place"


boxes_st = st.lists(st.tuples(st.floats(0, W - 70), st.floats(0, H - 70), st.floats(24, 70)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(boxes_st, st.floats(2.6, 8.0))
def test_every_face_is_held_by_a_window_no_larger_than_its_limit(raw, scale):
    boxes = [_box(x, y, s) for x, y, s in raw]
    windows = focus_regions(boxes, W, H, scale)
    assert len(windows) <= len(boxes)
    for box in boxes:
        side = box[2] - box[0]
        holding = [r for r in windows if _holds(r, box)]
        assert holding, "a face lost its focus window"
        assert min(r.size for r in holding) <= max(scale * side, 64) + 1, "a face's window outgrew its limit"


@pytest.fixture(scope="module")
def group_frame(engine, lfw):
    """Groups of 3-4 walkers, faces 32-40 px, heads overlapping a little, on a 1080p street."""
    from scene_helpers import lfw_people, sprite_from

    sprites = []
    for person in lfw_people(lfw):
        sprite = sprite_from(engine, sorted(person.glob("*.jpg"))[0], person.name)
        if sprite is not None:
            sprites.append(sprite)
        if len(sprites) == 14:
            break
    frame, boxes = background((W, H), seed=3), []
    rng = np.random.default_rng(5)
    spots = [(300, 400), (900, 300), (1400, 600), (600, 800)]
    k = 0
    for gx, gy in spots:
        for j in range(3 if gx != 900 else 4):
            face = float(rng.uniform(32, 40))
            boxes.append(paste(frame, sprites[k], gx + j * 1.8 * face, gy + rng.uniform(-8, 8), face))
            k += 1
    return frame, boxes


def test_shared_windows_find_every_face_of_a_group_with_fewer_windows(engine, group_frame):
    frame, boxes = group_frame
    net, focus_net = engine.detector.pool.slots[0]
    found = {}
    for scale in (0.0, 5.0):
        detector = FaceDetector([(net, focus_net)], SearchSettings(tile_sizes=(), whole_frame=False,
                                                                   focus_merge_scale=scale))
        dets = detector.detect(frame, None, boxes)  # focus windows only: no tiles, no whole frame
        centres = np.array([(d.box[:2] + d.box[2:]) / 2 for d in dets]).reshape(-1, 2)
        found[scale] = sum(bool(len(centres)) and np.hypot(*(centres - (b[:2] + b[2:]) / 2).T).min() < 10
                           for b in boxes)
    windows = len(focus_regions(boxes, W, H, 5.0))
    assert windows <= len(boxes) - 4, f"{windows} windows for {len(boxes)} faces in groups"
    assert found[5.0] == found[0.0] == len(boxes)


def test_the_window_scale_bench_finds_a_face_in_a_small_window_and_loses_it_in_a_huge_one(engine, group_frame):
    from lfr_tools.bench.window_scale import found_at

    frame, boxes = group_frame
    net, focus_net = engine.detector.pool.slots[0]
    rng = np.random.default_rng(0)
    near = [found_at(engine.detector, focus_net, frame, b, 3.0, rng) for b in boxes]
    far = [found_at(engine.detector, focus_net, frame, b, 16.0, rng) for b in boxes]
    assert sum(near) >= len(boxes) - 1 and sum(far) <= len(boxes) // 2, (near, far)


def test_without_lfw_dev_the_window_scale_bench_says_why(tmp_path, monkeypatch):
    from lfr_tools.bench import window_scale

    monkeypatch.setattr(window_scale, "LFW_DEV", tmp_path / "absent")
    assert "absent" in window_scale.run(tmp_path)["skipped"]
