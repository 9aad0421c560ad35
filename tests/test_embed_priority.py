"""Embedding priority (priority.py) on synthetic tracks and faces (no models)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from appliance.pipeline.decide import record
from appliance.pipeline.priority import (
    NEVER, PENDING, RARE, ROUTINE, EmbedBudget, PriorityRules, embed_class, note_embedded, note_miss, order,
)
from appliance.pipeline.track import Track, Tracker

THRESHOLD = 0.6
RULES = PriorityRules(far_miss_limit=3, recheck_frames=30, recheck_growth=1.25)


@dataclass
class _Det:
    height: float


@dataclass
class _Face:
    det: _Det
    quality: dict = field(default_factory=dict)


def _face(height: float, sharpness: float = 100.0) -> _Face:
    return _Face(_Det(height), {"sharpness": sharpness})


def _track(tid: int, embedded_at: int | None = None, height: float = 40.0) -> Track:
    track = Track(tid, np.zeros(4, np.float32), 0, deque(maxlen=5))
    if embedded_at is not None:
        note_embedded(track, _face(height), embedded_at)
    return track


def _scored(track: Track, seq: int, score: float, subject: int = 0) -> None:
    """What the finish stage keeps of one embedded face: the window entry and the miss count."""
    record(track, seq, subject, score, THRESHOLD)
    note_miss(track, score, THRESHOLD, margin=0.1)


def test_a_never_embedded_track_goes_first_then_near_misses_then_the_rest():
    fresh, near, routine = _track(1), _track(2, embedded_at=5), _track(3, embedded_at=2)
    _scored(near, 5, 0.55)  # 0.05 below the threshold
    _scored(routine, 2, 0.35)
    due = [(_face(60), routine), (_face(40), near), (_face(30), fresh)]
    assert [t.track_id for _, t in order(due, 10, RULES)] == [1, 2, 3]
    assert (near.near_misses, near.far_misses, routine.far_misses) == (1, 0, 1)


def test_a_track_with_a_match_not_yet_alerted_is_pending_like_a_near_miss():
    track = _track(1, embedded_at=3)
    _scored(track, 3, 0.7, subject=4)
    assert embed_class(track, _face(40), 4, RULES) == PENDING
    track.alerted.add(4)
    assert embed_class(track, _face(40), 4, RULES) == ROUTINE


def test_a_pending_track_whose_face_grew_goes_before_one_whose_face_did_not():
    grown, same = _track(1, embedded_at=8, height=30), _track(2, embedded_at=6, height=40)
    for t in (grown, same):
        _scored(t, t.last_embedded, 0.58)
    due = [(_face(40), same), (_face(36), grown)]  # same was embedded longer ago, but grown is larger now
    assert [t.track_id for _, t in order(due, 10, RULES)] == [1, 2]
    assert [t.track_id for _, t in order([(_face(40), same), (_face(30), grown)], 10, RULES)] == [2, 1]


def test_far_misses_put_a_track_last_until_it_grows_sharpens_or_waits_recheck_frames():
    far, routine = _track(1, embedded_at=10, height=40), _track(2, embedded_at=4)
    for seq in range(3):
        _scored(far, seq, 0.2)
    _scored(routine, 4, 0.3)
    assert embed_class(far, _face(40), 12, RULES) == RARE
    assert [t.track_id for _, t in order([(_face(40), far), (_face(40), routine)], 12, RULES)] == [2, 1]
    assert embed_class(far, _face(50), 12, RULES) == ROUTINE  # 1.25 x taller
    assert embed_class(far, _face(40, sharpness=250.0), 12, RULES) == ROUTINE  # markedly sharper
    assert embed_class(far, _face(40), 10 + 30, RULES) == ROUTINE  # recheck_frames passed
    assert embed_class(far, _face(40), 12, PriorityRules(far_miss_limit=0)) == ROUTINE  # rule off


def test_a_near_miss_keeps_a_track_out_of_the_rare_class_and_only_counts_are_kept():
    track = _track(1, embedded_at=4)
    for seq, score in enumerate((0.2, 0.2, 0.2, 0.52)):
        _scored(track, seq, score)
    assert embed_class(track, _face(40), 5, RULES) == PENDING
    assert all(h.score == 0.0 and h.subject == -1 for h in track.hits)  # no score, no subject of a miss
    assert (track.near_misses, track.far_misses) == (1, 3)


def test_least_recently_embedded_first_within_a_class_then_the_larger_face():
    a, b, c = _track(1, embedded_at=7), _track(2, embedded_at=3), _track(3, embedded_at=3)
    due = [(_face(40), a), (_face(30), b), (_face(50), c)]
    assert [t.track_id for _, t in order(due, 10, RULES)] == [3, 2, 1]


def test_a_split_track_forgets_its_miss_counts():
    tracker = Tracker(0.2, 15, 5)
    track = tracker.update(0, [np.array([0, 0, 40, 40], np.float32)])[0]
    _scored(track, 0, 0.55)
    _scored(track, 1, 0.1)
    tracker.split(track)
    assert (track.near_misses, track.far_misses) == (0, 0)


def test_the_time_budget_embeds_what_fits_the_share_at_the_measured_cost_within_its_bounds():
    budget = EmbedBudget(fixed=2, share=0.45, most=8, nominal_interval_s=1 / 90)
    assert budget.count(0, 0.0, paced=True) == 2  # no cost measured yet: the fixed count
    budget.measured(2, 0.014)  # 7 ms a face
    for seq in range(1, 5):
        n = budget.count(seq, seq / 15, paced=True)
    assert n == 4  # 0.45 x 66.7 ms / 7 ms
    assert budget.count(5, 5 / 15, paced=False) == 2  # unpaced: the nominal 11 ms interval, floor embed_budget
    for _ in range(30):  # an EWMA: cheap faces for a while
        budget.measured(1, 0.001)
    assert budget.count(6, 6 / 15, paced=True) == 8  # cheap faces: capped at embed_max
    assert EmbedBudget(2, 0.0, 8, 1 / 90).count(0, 0.0, True) == 2  # share off: the fixed count
    assert EmbedBudget(0, 0.45, 8, 1 / 90).count(0, 0.0, True) == 0  # 0: every face
