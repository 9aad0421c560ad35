"""Tracker and decision rules on synthetic boxes (no models)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.pipeline.decide import decide, record
from appliance.pipeline.track import Tracker, affinities, iou


def _box(x, y, s=40.0):
    return np.array([x, y, x + s, y + s], np.float32)


def test_a_steady_walker_keeps_one_track_even_through_a_missed_frame():
    tracker = Tracker(iou_min=0.2, max_missed=15, window=5)
    ids = set()
    for seq in range(20):
        if seq == 10:
            tracker.update(seq, [])  # detector missed this frame
            continue
        ids.add(tracker.update(seq, [_box(100 + 30 * seq, 200)])[0].track_id)
    assert len(ids) == 1


def test_two_people_far_apart_get_two_tracks_and_a_gap_ends_a_track():
    tracker = Tracker(iou_min=0.2, max_missed=3, window=5)
    a, b = tracker.update(0, [_box(100, 100), _box(900, 500)])
    assert a.track_id != b.track_id
    later = tracker.update(10, [_box(100, 100)])[0]
    assert later.track_id not in (a.track_id, b.track_id)


def test_alert_needs_n_of_m_hits_and_fires_once_per_subject():
    tracker = Tracker(iou_min=0.2, max_missed=15, window=5)
    track = tracker.update(0, [_box(0, 0)])[0]
    record(track, 0, 3, 0.7, threshold=0.55)
    assert decide(track, hits_needed=2) is None
    record(track, 1, 3, 0.5, threshold=0.55)  # below threshold: no hit
    assert decide(track, hits_needed=2) is None
    record(track, 2, 3, 0.8, threshold=0.55)
    hit = decide(track, hits_needed=2)
    assert hit is not None and hit.subject == 3 and hit.score == 0.8
    record(track, 3, 3, 0.9, threshold=0.55)
    assert decide(track, hits_needed=2) is None, "second alert for the same track and subject"


def test_hits_outside_the_window_do_not_count():
    tracker = Tracker(iou_min=0.2, max_missed=15, window=3)
    track = tracker.update(0, [_box(0, 0)])[0]
    record(track, 0, 1, 0.9, 0.55)
    for seq in range(1, 4):
        record(track, seq, 1, 0.1, 0.55)
    record(track, 4, 1, 0.9, 0.55)
    assert decide(track, hits_needed=2) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200)),
                min_size=1, max_size=6),
       st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200)),
                min_size=1, max_size=6))
def test_affinity_matrix_is_iou_or_a_small_near_neighbour_score(tracks, dets):
    """The vectorised affinities agree with the scalar IoU, pair by pair."""
    def xyxy(rows):
        return np.array([[x, y, x + w, y + h] for x, y, w, h in rows], np.float64)

    expected, boxes = xyxy(tracks), xyxy(dets)
    score = affinities(expected, boxes, iou_min=0.2)
    for t, e in enumerate(expected):
        for d, b in enumerate(boxes):
            overlap = iou(e, b)
            if overlap >= 0.2:
                assert score[t, d] == pytest.approx(overlap)
            else:
                assert 0.0 <= score[t, d] < 1e-3
                far = np.linalg.norm((e[:2] + e[2:]) / 2 - (b[:2] + b[2:]) / 2) > 1.5 * max(e[2] - e[0], b[2] - b[0])
                if far:
                    assert score[t, d] == 0.0


def test_focus_budget_visits_every_track_in_turn_and_keeps_them_alive():
    """20 walkers, 8 focus windows a frame, found only through their focus windows."""
    tracker = Tracker(iou_min=0.2, max_missed=15, window=5)
    walkers = [_box(60.0 * i, 100.0) for i in range(20)]
    ids = {t.track_id for t in tracker.update(0, walkers)}
    for seq in range(1, 31):
        focus = tracker.predictions(seq, budget=8)
        assert len(focus) == 8
        found = [b for b in walkers if any(np.allclose(b, f) for f in focus)]
        assert len(found) == 8, "each focus box is a walker's predicted box"
        ids |= {t.track_id for t in tracker.update(seq, found)}
        assert max(seq - t.last_seq for t in tracker.tracks.values()) <= 3, "no track waits past its turn"
    assert len(ids) == 20 and len(tracker.tracks) == 20, "nobody lost their track, so nobody alerts twice"
    assert len(tracker.predictions(31)) == 20, "without a budget every live track gets a window"


def _walk(tracker, seqs, x0=100.0, speed=20.0, t_of=lambda s: s / 15.0):
    return [tracker.update(s, [_box(x0 + speed * s, 200, 60)], t_of(s))[0] for s in seqs]


def test_a_face_lost_mid_walk_rejoins_its_track_where_it_was_heading():
    """Lost for 20 frames (past max_missed): the box where the track was heading continues it,
    with its history; with re-joining off it starts a new track."""
    for rejoin_s, same in ((3.0, True), (0.0, False)):
        tracker = Tracker(iou_min=0.2, max_missed=15, window=5, rejoin_s=rejoin_s)
        before = _walk(tracker, range(10))[-1]
        before.alerted.add(4)
        tracker.update(20, [], 20 / 15.0)  # the track ends (lost)
        after = _walk(tracker, range(30, 34))[0]
        assert (after is before) == same and (after.rejoined_at == 30) == same
        assert (4 in after.alerted) == same and tracker.rejoins == int(same)


def test_no_rejoin_far_from_the_heading_too_late_or_at_another_size():
    tracker = Tracker(iou_min=0.2, max_missed=15, window=5, rejoin_s=3.0)
    lost = _walk(tracker, range(10))[-1]
    assert tracker.update(30, [_box(100.0, 500, 60)], 2.0)[0] is not lost  # behind it and far off its path
    assert tracker.update(31, [_box(100 + 20 * 31, 200, 140)], 2.07)[0] is not lost  # a much bigger face
    assert tracker.update(32, [_box(100 + 20 * 32, 200, 60)], 9.0)[0] is not lost  # 8 s later: past rejoin_s
    assert tracker.rejoins == 0


def test_split_undoes_a_rejoin_under_a_new_id_and_the_template_ends_with_the_track():
    from appliance.pipeline.template import TrackTemplate

    tracker = Tracker(iou_min=0.2, max_missed=3, window=5, rejoin_s=3.0)
    track = _walk(tracker, range(5))[-1]
    track.template = TrackTemplate(4)
    track.template.add(np.ones(4, np.float32), {"det_score": 0.9, "height_px": 60.0, "yaw": 0.1})
    total = track.template.total
    record(track, 4, 2, 0.9, 0.55)
    track.alerted.add(2)
    tracker.update(12, [], 12 / 15.0)  # ended: the template is wiped and dropped
    assert track.template is None and not total.any() and track.track_id in tracker.lost
    rejoined = _walk(tracker, [14])[0]
    assert rejoined is track and tracker.tracks[track.track_id] is track
    old = track.track_id
    tracker.split(track)
    assert track.track_id != old and not track.alerted and not track.hits and track.rejoined_at is None
    tracker.update(15, [_box(100 + 20 * 15, 200, 60)], 1.0)
    assert set(tracker.tracks) == {track.track_id}, "re-keyed on the tracker's own thread"


def test_repeat_memory_is_per_camera_runs_from_the_last_alert_and_zero_turns_it_off():
    from appliance.pipeline.repeat import RepeatMemory

    memory = RepeatMemory(60.0)
    memory.remember(("dep", "cam0", "S-1"), "a-1", 100.0)
    assert memory.original(("dep", "cam0", "S-1"), 159.9) == "a-1"
    assert memory.original(("dep", "cam1", "S-1"), 120.0) is None, "another camera alerts on its own"
    assert memory.original(("dep2", "cam0", "S-1"), 120.0) is None, "another deployment too"
    assert memory.original(("dep", "cam0", "S-1"), 160.1) is None, "past the window: a new alert"
    off = RepeatMemory(0.0)
    off.remember(("dep", "cam0", "S-1"), "a-1", 100.0)
    assert off.original(("dep", "cam0", "S-1"), 100.0) is None
