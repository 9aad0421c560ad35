"""Track: one track per person passing, so that alerts are per person, not per frame.

Greedy IoU association with a centre-distance fallback for fast movers; a track
ends after ``max_missed`` frames without a detection. A track keeps only its box
and its match history (subject index, score): never a non-matching face's
embedding or crop.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import count

import numpy as np

FALLBACK_DISTANCE = 1.5  # a non-overlapping box this many face sizes away may still continue a track
VELOCITY_SMOOTHING = 0.5


@dataclass
class Hit:
    """One good (quality-passed) frame of a track: best subject and its score."""

    seq: int
    subject: int
    score: float


@dataclass
class Track:
    """A person passing the camera."""

    track_id: int
    box: np.ndarray
    last_seq: int
    hits: deque = field(default_factory=deque)
    alerted: set[int] = field(default_factory=set)
    frames: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    last_embedded: int = -(10 ** 9)

    def predicted(self, seq: int) -> np.ndarray:
        """The box moved on by the track's velocity to frame ``seq`` (constant-velocity model)."""
        shift = self.velocity * (seq - self.last_seq)
        return self.box + np.concatenate([shift, shift])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def _affinity(track: Track, box: np.ndarray, seq: int, iou_min: float) -> float:
    """IoU with the predicted box when it reaches iou_min, else a small score for near neighbours."""
    expected = track.predicted(seq)
    overlap = iou(expected, box)
    if overlap >= iou_min:
        return overlap
    size = max(expected[2] - expected[0], box[2] - box[0])
    dist = float(np.linalg.norm(_centre(expected) - _centre(box)))
    return 0.0 if dist > FALLBACK_DISTANCE * size else 1e-3 * (1 - dist / (FALLBACK_DISTANCE * size))


class Tracker:
    """Keeps the live tracks of one camera."""

    def __init__(self, iou_min: float, max_missed: int, window: int) -> None:
        self.iou_min = iou_min
        self.max_missed = max_missed
        self.window = window
        self.tracks: dict[int, Track] = {}
        self._ids = count(1)

    def update(self, seq: int, boxes: list[np.ndarray]) -> list[Track]:
        """Assign each box to a track (new or existing); return the tracks in box order."""
        self._expire(seq)
        pairs = sorted(((_affinity(t, b, seq, self.iou_min), tid, i) for tid, t in self.tracks.items()
                        for i, b in enumerate(boxes)), reverse=True)
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for score, tid, i in pairs:
            if i in assigned or tid in used or score <= 0:
                continue
            assigned[i] = self.tracks[tid]
            used.add(tid)
        for i, box in enumerate(boxes):
            track = assigned.get(i) or self._new(box, seq)
            self._move(track, np.asarray(box, np.float32), seq)
            assigned[i] = track
        return [assigned[i] for i in range(len(boxes))]

    @staticmethod
    def _move(track: Track, box: np.ndarray, seq: int) -> None:
        if track.frames and seq > track.last_seq:
            step = (_centre(box) - _centre(track.box)) / (seq - track.last_seq)
            track.velocity = VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity
        track.box, track.last_seq = box, seq
        track.frames += 1

    def _new(self, box: np.ndarray, seq: int) -> Track:
        track = Track(next(self._ids), np.asarray(box, np.float32), seq, deque(maxlen=self.window))
        self.tracks[track.track_id] = track
        return track

    def predictions(self, seq: int, recent: int = 3) -> list[np.ndarray]:
        """Predicted boxes at ``seq`` of the tracks seen in the last ``recent`` frames."""
        return [t.predicted(seq) for t in self.tracks.values() if seq - t.last_seq <= recent]

    def _expire(self, seq: int) -> None:
        for tid in [tid for tid, t in self.tracks.items() if seq - t.last_seq > self.max_missed]:
            del self.tracks[tid]
