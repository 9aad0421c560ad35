"""Decide: a track alerts when N of its last M good frames clear the threshold for one subject.

One alert per track and subject. Scores below the threshold are recorded only
as "no subject" so nothing about a non-match survives the frame.
"""
from __future__ import annotations

from collections import Counter

from .track import Hit, Track

NO_SUBJECT = -1


def record(track: Track, seq: int, subject: int, score: float, threshold: float) -> None:
    """Add one good frame's top-1 result to the track's window."""
    if score >= threshold:
        track.hits.append(Hit(seq, subject, float(score)))
    else:
        track.hits.append(Hit(seq, NO_SUBJECT, 0.0))


def decide(track: Track, hits_needed: int) -> Hit | None:
    """The best hit of a subject that reached N hits in the window and has not alerted yet."""
    counts = Counter(h.subject for h in track.hits if h.subject != NO_SUBJECT)
    for subject, n in counts.most_common():
        if n >= hits_needed and subject not in track.alerted:
            track.alerted.add(subject)
            return max((h for h in track.hits if h.subject == subject), key=lambda h: h.score)
    return None
