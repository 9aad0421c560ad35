"""Embedding priority: which of a frame's good faces the finish stage embeds (issue 12).

In a crowd only ``[match] embed_budget`` faces of some 25 are embedded per frame, so the
order decides who can alert. It uses only what a track already keeps, never a face's crop
or embedding: its match history, the box and quality of its faces, and (kept here) how many
of its faces scored within ``near_miss_margin`` below the list's threshold ("near misses")
or further below it ("far misses") -- two counts, no subject and no score.

Order (earlier class first; within a class, least recently embedded, then larger face):
  0. tracks never embedded;
  1. tracks with evidence pending -- a match not yet alerted, or a near miss -- a face
     larger or sharper than at the last embedding first;
  2. every other track;
  3. tracks that missed far below the threshold ``far_miss_limit`` times and never came near,
     unless their face is notably larger/sharper than when last embedded (``recheck_growth``)
     or ``recheck_frames`` frames have passed (then class 2): embedded only if the budget
     has room left after every other class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..vision.plan import FrameRate
from .decide import NO_SUBJECT
from .track import Track

NEVER, PENDING, ROUTINE, RARE = range(4)
SHARPER = 2.0  # Laplacian variance grows with the square of the detail: recheck_growth squared, at least this


@dataclass(frozen=True)
class PriorityRules:
    """The ``[match]`` keys of the order (see MatchConfig)."""

    far_miss_limit: int = 3
    recheck_frames: int = 30
    recheck_growth: float = 1.25


def face_height(face) -> float:
    """The face's detector box height in pixels."""
    return float(face.det.height)


def note_miss(track: Track, score: float, threshold: float, margin: float) -> None:
    """Count a face that did not match: a near miss within ``margin`` below the threshold,
    else a far miss. Only the count is kept (no subject, no score)."""
    if score >= threshold:
        return
    if score >= threshold - margin:
        track.near_misses += 1
    else:
        track.far_misses += 1


def note_embedded(track: Track, face, seq: int) -> None:
    """Remember when and at what size/sharpness the track's face was last embedded."""
    track.last_embedded = seq
    track.embedded_height = face_height(face)
    track.embedded_sharpness = float(face.quality.get("sharpness", 0.0))


def _grown(track: Track, face, growth: float) -> bool:
    """The face is ``growth`` times taller, or markedly sharper, than at its last embedding."""
    sharp = float(face.quality.get("sharpness", 0.0))
    return (face_height(face) >= growth * track.embedded_height
            or sharp >= max(growth * growth, SHARPER) * track.embedded_sharpness > 0)


def _pending(track: Track) -> bool:
    return track.near_misses > 0 or any(h.subject != NO_SUBJECT and h.subject not in track.alerted
                                        for h in track.hits)


def embed_class(track: Track, face, seq: int, rules: PriorityRules) -> int:
    """The face's class in the order (NEVER, PENDING, ROUTINE or RARE)."""
    if track.last_embedded < 0:
        return NEVER
    if _pending(track):
        return PENDING
    if (rules.far_miss_limit and track.far_misses >= rules.far_miss_limit
            and seq - track.last_embedded < rules.recheck_frames and not _grown(track, face, rules.recheck_growth)):
        return RARE
    return ROUTINE


def order(due: Sequence[tuple[object, Track]], seq: int, rules: PriorityRules) -> list[tuple[object, Track]]:
    """``due`` (face, track) pairs in embedding order."""
    keyed = []
    for face, track in due:
        cls = embed_class(track, face, seq, rules)
        not_grown = cls == PENDING and not _grown(track, face, 1.0 + 1e-6)
        keyed.append(((cls, not_grown, track.last_embedded, -face_height(face)), face, track))
    keyed.sort(key=lambda k: k[0])
    return [(face, track) for _, face, track in keyed]


class EmbedBudget:
    """How many faces to embed this frame: ``[match] embed_budget``, or with ``embed_share``
    set, as many as fit that share of the frame interval at the finish stage's own measured
    cost per face (never fewer than ``embed_budget``, nor more than ``embed_max``)."""

    ALPHA = 0.2  # EWMA weight of a new cost sample

    def __init__(self, fixed: int, share: float, most: int, nominal_interval_s: float) -> None:
        self.fixed, self.share, self.most = fixed, share, most
        self.rate = FrameRate(nominal_interval_s)
        self.nominal_interval_s = nominal_interval_s
        self.face_s = 0.0  # measured seconds per embedded face (0: not yet measured)

    def count(self, seq: int, t: float, paced: bool) -> int:
        """Faces to embed for frame ``seq`` captured at ``t`` (0: all)."""
        interval = self.rate.observe(seq, t)
        if not self.share or not self.fixed:
            return self.fixed
        if not paced:
            interval = self.nominal_interval_s
        fits = int(self.share * interval / self.face_s) if self.face_s > 0 else self.fixed
        return max(self.fixed, min(fits, self.most))

    def measured(self, faces: int, seconds: float) -> None:
        """The finish stage embedded ``faces`` faces in ``seconds`` (wall)."""
        if faces:
            sample = seconds / faces
            self.face_s = sample if not self.face_s else self.face_s + self.ALPHA * (sample - self.face_s)
