"""Decide: a track alerts when N of its last M good frames clear the threshold for one subject
(``[match] evidence = "frames"``), or also when its template of at least N good faces does
(``"template"``, template.py).

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


def decide_template(track: Track, seq: int, subject: int, score: float, threshold: float,
                    faces_needed: int) -> Hit | None:
    """The template's hit when the track's template, built from at least ``faces_needed``
    good faces, clears the threshold for a subject that has not alerted on the track yet."""
    template = track.template
    if template is None or template.frames < faces_needed or score < threshold or subject in track.alerted:
        return None
    track.alerted.add(subject)
    return Hit(seq, subject, float(score))


def subjects_before(track: Track, seq: int) -> set[int]:
    """Subjects the track matched or alerted on before frame ``seq``."""
    return {h.subject for h in track.hits if h.seq < seq and h.subject != NO_SUBJECT} | track.alerted
