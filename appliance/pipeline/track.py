"""Track: one track per person passing, so that alerts are per person, not per frame.

Greedy IoU association with a centre-distance fallback for fast movers; a track
ends after ``max_missed`` frames without a detection. A track keeps only its box
and its match history (subject index, score), and while it lives its template
(template.py) and, while its face is dark, the aligned crops of its last few frames
(lowlight.SteadyCrops, at most ``[quality] lowlight_steady_frames``, each overwritten
as it ages out): in memory only, wiped when the track ends or is re-joined, so
nothing of a face outlives its track.

Re-joining: a box that no live track claims, found where a track that ended (lost for
more than ``max_missed`` frames) in the last ``rejoin_s`` seconds of capture time was heading (its constant-velocity prediction, a reach that
grows with the gap, a similar face size), continues that track (same id, history and
alerted subjects) instead of starting a new one. The re-joined track is on probation
(``rejoined_at``) until its first match: a match naming a subject its history does not
hold undoes the join (:meth:`Tracker.split`).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import count

import numpy as np

FALLBACK_DISTANCE = 1.5  # a non-overlapping box this many face sizes away may still continue a track
VELOCITY_SMOOTHING = 0.5
REJOIN_REACH = 2.0  # face sizes from a lost track's predicted centre, plus REJOIN_GROWTH per frame lost
REJOIN_GROWTH = 0.1
REJOIN_MAX_REACH = 5.0
REJOIN_SIZE_RATIO = 1.6  # a re-joining face is at most this much bigger or smaller
NOMINAL_FPS = 15.0  # frame times when the caller gives none (tests on synthetic boxes)


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
    last_t: float = 0.0  # capture time of the last box
    rejoined_at: int | None = None  # frame of a re-join not yet confirmed by a match
    template: object | None = field(default=None, repr=False)  # TrackTemplate while the track lives
    steady: object | None = field(default=None, repr=False)  # lowlight.SteadyCrops while its face is dark
    near_misses: int = 0  # faces scored just below the threshold (counts only: priority.py)
    far_misses: int = 0  # faces scored far below it
    embedded_height: float = 0.0  # face height and sharpness at the last embedding
    embedded_sharpness: float = 0.0

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


def affinities(expected: np.ndarray, boxes: np.ndarray, iou_min: float) -> np.ndarray:
    """(tracks, boxes) affinity: IoU with the predicted box when it reaches iou_min, else
    a small score (below 1e-3) for near neighbours, else 0."""
    e, b = expected[:, None, :], boxes[None, :, :]
    ix = np.clip(np.minimum(e[..., 2], b[..., 2]) - np.maximum(e[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(e[..., 3], b[..., 3]) - np.maximum(e[..., 1], b[..., 1]), 0, None)
    inter = ix * iy
    union = (e[..., 2] - e[..., 0]) * (e[..., 3] - e[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    reach = FALLBACK_DISTANCE * np.maximum(e[..., 2] - e[..., 0], b[..., 2] - b[..., 0])
    dist = np.linalg.norm((e[..., :2] + e[..., 2:]) / 2 - (b[..., :2] + b[..., 2:]) / 2, axis=-1)
    near = np.where(dist > reach, 0.0, 1e-3 * (1 - dist / np.maximum(reach, 1e-9)))
    return np.where(overlap >= iou_min, overlap, near)


class Tracker:
    """Keeps the live tracks of one camera."""

    def __init__(self, iou_min: float, max_missed: int, window: int, rejoin_s: float = 0.0) -> None:
        self.iou_min = iou_min
        self.max_missed = max_missed
        self.window = window
        self.rejoin_s = rejoin_s
        self._now = 0.0
        self.tracks: dict[int, Track] = {}
        self.lost: dict[int, Track] = {}  # ended tracks that may still be re-joined: box, velocity, history
        self.rejoins = 0
        self._ids = count(1)

    def update(self, seq: int, boxes: list[np.ndarray], t: float | None = None) -> list[Track]:
        """Assign each box to a track (new, re-joined or continued); return the tracks in box order.
        ``t`` is the frame's capture time (seconds); without it frames are NOMINAL_FPS a second."""
        self._now = seq / NOMINAL_FPS if t is None else t
        self._expire(seq)
        assigned: dict[int, Track] = {}
        if self.tracks and boxes:
            tids = list(self.tracks)
            expected = np.stack([self.tracks[tid].predicted(seq) for tid in tids]).astype(np.float64)
            score = affinities(expected, np.asarray(boxes, np.float64).reshape(-1, 4), self.iou_min)
            used: set[int] = set()  # track ids taken this frame
            rows, cols = np.nonzero(score > 0)
            # best pairs first; ties go to the later track and box, as a reverse sort of (score, tid, i) did
            for k in sorted(range(len(rows)), key=lambda k: (score[rows[k], cols[k]], tids[rows[k]], cols[k]),
                            reverse=True):
                tid, i = tids[rows[k]], int(cols[k])
                if i in assigned or tid in used:
                    continue
                assigned[i] = self.tracks[tid]
                used.add(tid)
        for i, box in enumerate(boxes):
            track = assigned.get(i) or self._rejoin(np.asarray(box, np.float32), seq) or self._new(box, seq)
            self._move(track, np.asarray(box, np.float32), seq)
            assigned[i] = track
        return [assigned[i] for i in range(len(boxes))]

    def _move(self, track: Track, box: np.ndarray, seq: int) -> None:
        if track.frames and seq > track.last_seq:
            step = (_centre(box) - _centre(track.box)) / (seq - track.last_seq)
            track.velocity = VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity
        track.box, track.last_seq, track.last_t = box, seq, self._now
        track.frames += 1

    def _new(self, box: np.ndarray, seq: int) -> Track:
        track = Track(next(self._ids), np.asarray(box, np.float32), seq, deque(maxlen=self.window))
        self.tracks[track.track_id] = track
        return track

    def predictions(self, seq: int, budget: int = 0, recent: int = 3) -> list[np.ndarray]:
        """Predicted boxes at ``seq`` of the tracks seen lately, least recently found first,
        at most ``budget`` of them (0: all).

        With a budget each track is found about every ``tracks / budget`` frames, so
        "lately" stretches to that many frames (and never below ``recent``).
        """
        if budget:
            recent = max(recent, math.ceil(len(self.tracks) / budget) + 1)
        due = sorted((t for t in self.tracks.values() if seq - t.last_seq <= recent),
                     key=lambda t: (t.last_seq, t.last_embedded, t.track_id))
        return [t.predicted(seq) for t in (due[:budget] if budget else due)]

    def _rejoin(self, box: np.ndarray, seq: int) -> Track | None:
        """The lost track whose predicted box this box continues, if any. Only ended tracks:
        a live track that missed a frame or two is the association's (offering it here let a
        passer-by's new box take a crowd member's track, who then alerted again on a new one)."""
        if not self.rejoin_s:
            return None
        scored = [(d, t.track_id, t) for t in self.lost.values()
                  if self._now - t.last_t <= self.rejoin_s and (d := rejoin_distance(t, box, seq)) is not None]
        if not scored:
            return None
        track = min(scored, key=lambda s: (s[0], -s[1]))[2]
        del self.lost[track.track_id]
        self.tracks[track.track_id] = track
        track.rejoined_at = seq
        drop_template(track)  # the template restarts: it must not mix two people if the join is wrong
        self.rejoins += 1
        return track

    def split(self, track: Track) -> None:
        """Undo a re-join: the track continues under a new id without the earlier history.
        Safe from the finish thread: the tracks map is re-keyed at the next update."""
        track.hits.clear()
        track.alerted.clear()
        track.near_misses = track.far_misses = 0
        track.rejoined_at = None
        track.track_id = next(self._ids)

    def _expire(self, seq: int) -> None:
        # split() (finish thread) changes only the track; its new id is keyed here, on this thread
        self.tracks = {t.track_id: t for t in self.tracks.values()}
        for tid in [tid for tid, t in self.tracks.items() if seq - t.last_seq > self.max_missed]:
            track = self.tracks.pop(tid)
            drop_template(track)
            if self.rejoin_s:
                self.lost[tid] = track
        for tid in [tid for tid, t in self.lost.items() if self._now - t.last_t > self.rejoin_s]:
            del self.lost[tid]


def rejoin_distance(track: Track, box: np.ndarray, seq: int) -> float | None:
    """Distance, in face sizes, from where ``track`` was heading to ``box``; None outside the gate."""
    size, was = float(box[3] - box[1]), float(track.box[3] - track.box[1])
    if min(size, was) <= 0 or max(size, was) / min(size, was) > REJOIN_SIZE_RATIO:
        return None
    gap = seq - track.last_seq
    dist = float(np.linalg.norm(_centre(track.predicted(seq)) - _centre(box))) / max(size, was)
    reach = min(REJOIN_MAX_REACH, REJOIN_REACH + REJOIN_GROWTH * gap)
    return dist if dist <= reach else None


def drop_template(track: Track) -> None:
    """Wipe and forget the track's template and dark crops (its faces' embeddings and pixels end with it)."""
    if track.template is not None:
        track.template.wipe()
        track.template = None
    if track.steady is not None:
        track.steady.wipe()
        track.steady = None
