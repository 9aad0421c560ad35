"""Per-frame processing: engine -> track -> match -> decide, with privacy by construction.

A frame is processed in two stages on two threads (see runner.py): ``analyse``
(detect, gate, align, track; choose the faces to embed) and ``finish`` (embed,
match, decide). Everything about a face crosses between them only inside the
frame's :class:`Analysed` object and is gone when ``finish`` returns; only
counters, track boxes and "no subject" marks survive the frame (and, with
``[match] evidence = "template"``, the track's template, in memory until the track ends).

A subject alerted on the same camera within ``[match] repeat_window_s`` of capture
time gives a repeat sighting (``Alert.kind``) instead of a new alarm (repeat.py).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..capture.base import Frame
from ..config import Config
from ..errors import WatchlistError
from ..thresholds import choose, steady_threshold
from ..vision.engine import Face, FaceEngine, thumbnail
from ..vision.lowlight import SteadyCrops
from .alert import Alert
from .decide import decide, decide_template, record, subjects_before
from .match import Watchlist
from .priority import EmbedBudget, PriorityRules, note_embedded, note_miss, order
from .repeat import RepeatMemory
from .template import TrackTemplate
from .track import Hit, Track, Tracker

log = logging.getLogger(__name__)

WatchlistProvider = Callable[[], "Watchlist | None"]


@dataclass
class Analysed:
    """A frame after stage one: the faces chosen for embedding, with their tracks."""

    frame: Frame
    chosen: list[tuple[Face, Track]]


class FrameProcessor:
    """Turns frames into alerts against whatever watchlist the provider currently gives."""

    def __init__(self, cfg: Config, engine: FaceEngine, watchlist: WatchlistProvider) -> None:
        self.cfg = cfg
        self.engine = engine
        self.watchlist = watchlist
        self.tracker = Tracker(cfg.track.iou_min, cfg.track.max_missed_frames, cfg.match.window,
                               cfg.track.rejoin_s)
        self.repeats = RepeatMemory(cfg.match.repeat_window_s)
        self.counters: Counter[str] = Counter()
        m = cfg.match
        self.rules = PriorityRules(m.far_miss_limit, m.recheck_frames, m.recheck_growth)
        self.budget = EmbedBudget(m.embed_budget, m.embed_share, m.embed_max, 1 / cfg.detect.nominal_fps)

    def analyse(self, frame: Frame) -> "Analysed":
        """Stage one: detect, gate, align and track; choose which faces to embed."""
        d = self.cfg.detect
        focus = self.tracker.predictions(frame.seq, d.focus_windows) if d.focus_tracks else ()
        faces = self.engine.analyse(frame.image, frame.seq, focus, frame.lores, frame.lores_scale, frame.paced)
        # counts only: never a box, crop or vector of a face that may not match
        log.debug("frame %d: %d face(s), %d passed the quality gate", frame.seq, len(faces),
                  sum(f.reject is None for f in faces))
        with self.engine.times.stage("track"):
            tracks = self.tracker.update(frame.seq, [f.det.box for f in faces], frame.t_mono)
        self.counters["frames"] += 1
        self.counters["faces_seen"] += len(faces)
        for key, value in self.engine.search_counters().items():  # the plan's own totals and gauges
            self.counters[key] = value
        for face in faces:
            if face.reject:
                self.counters[f"quality_reject_{face.reject}"] += 1
        for face, track in zip(faces, tracks):
            self._keep_dark_crop(face, track, frame.seq)
        chosen = self._choose(faces, tracks, frame.seq, self.budget.count(frame.seq, frame.t_mono, frame.paced))
        self.counters["embeddings_deferred"] += sum(f.reject is None for f in faces) - len(chosen)
        for face, track in chosen:
            note_embedded(track, face, frame.seq)
            if track.steady is not None:
                face.steady = track.steady.before(frame.seq)
                self.counters["embeddings_steadied"] += bool(face.steady)
        return Analysed(frame, chosen)

    def _keep_dark_crop(self, face: Face, track: Track, seq: int) -> None:
        """A dark face's aligned crop joins its track's last few (lowlight.SteadyCrops); a bright
        face wipes them; a face the gate rejected adds nothing."""
        q = self.cfg.quality
        if face.reject is not None or face.aligned is None:
            return
        if q.lowlight_steady_frames <= 1 or face.quality.get("brightness", 255.0) >= q.lowlight_steady_below:
            if track.steady is not None:
                track.steady.wipe()
                track.steady = None
            return
        if track.steady is None:
            track.steady = SteadyCrops(q.lowlight_steady_frames)
        track.steady.add(seq, face.aligned)

    def _choose(self, faces: list[Face], tracks: list[Track], seq: int, budget: int) -> list[tuple[Face, Track]]:
        """Faces to embed this frame: good faces of tracks that have not alerted (or were
        re-joined and not yet confirmed by a match), in the evidence-driven order of
        priority.py, at most ``budget`` of them (0: all)."""
        due = [(f, t) for f, t in zip(faces, tracks)
               if f.reject is None and (not t.alerted or t.rejoined_at is not None)]
        due = order(due, seq, self.rules)
        return due[:budget] if budget else due

    def finish(self, analysed: "Analysed") -> list[Alert]:
        """Stage two: embed the chosen faces, match them, decide; return completed alerts."""
        self.counters["tracks_rejoined"] = self.tracker.rejoins
        watchlist = self.watchlist()
        if watchlist is None or len(watchlist) == 0:
            self.counters["faces_unmatched_no_watchlist"] += len(analysed.chosen)
            return []
        if watchlist.model_id != self.engine.model_id:
            raise WatchlistError(
                f"watchlist was built for model {watchlist.model_id}, this unit runs {self.engine.model_id}",
                fix="rebuild the watchlist bundle with the unit's model")
        if not analysed.chosen:
            return []
        start = time.perf_counter()
        with self.engine.times.stage("embed"):
            self.engine.embed_faces([f for f, _ in analysed.chosen])
        self.budget.measured(len(analysed.chosen), time.perf_counter() - start)
        chosen = [(f, t) for f, t in analysed.chosen if f.embedding is not None]
        for face, _ in analysed.chosen:
            if face.embedding is None:  # turned away, seen by the face mesh
                self.counters[f"quality_reject_{face.reject}"] += 1
        if not chosen:
            return []
        with self.engine.times.stage("match_decide"):
            return self._match(Analysed(analysed.frame, chosen), watchlist)

    def _match(self, analysed: "Analysed", watchlist: Watchlist) -> list[Alert]:
        alerts = []
        best, scores = watchlist.top1(np.stack([f.embedding for f, _ in analysed.chosen]), self.cfg.match.threads)
        templates = self._template_scores(analysed.chosen, watchlist)
        for (face, track), idx, score, template in zip(analysed.chosen, best, scores, templates):
            alert = self._update_track(analysed.frame, face, track, watchlist, int(idx), float(score), template)
            if alert:
                alerts.append(alert)
        return alerts

    def _threshold(self, watchlist: Watchlist) -> float:
        """The threshold the deployment chose for this list; a list given without one (demo,
        tests) gets the accuracy card's rule for its size and the configured threshold."""
        if watchlist.threshold is None:
            watchlist.threshold = choose(watchlist.model_id, len(watchlist), self.cfg.match.threshold).threshold
        return watchlist.threshold

    def _template_scores(self, chosen: list[tuple[Face, Track]],
                         watchlist: Watchlist) -> list[tuple[int, float] | None]:
        """Fold each face into its track's template and score the templates (evidence = "template")."""
        if self.cfg.match.evidence != "template":
            return [None] * len(chosen)
        for face, track in chosen:
            if track.template is None:
                track.template = TrackTemplate(face.embedding.shape[0])
            track.template.add(face.embedding, face.quality)
        best, scores = watchlist.top1(np.stack([t.template.vector() for _, t in chosen]), self.cfg.match.threads)
        return [(int(b), float(sc)) for b, sc in zip(best, scores)]

    def _update_track(self, frame: Frame, face: Face, track: Track, watchlist: Watchlist,
                      idx: int, score: float, template: tuple[int, float] | None = None) -> Alert | None:
        threshold = self._threshold(watchlist)
        if face.quality.get("steady_frames"):  # a dark face averaged over frames: a stricter threshold
            threshold = max(threshold, steady_threshold(watchlist.model_id, len(watchlist)))
        self._confirm_rejoin(track, idx, score, threshold)
        record(track, frame.seq, idx, score, threshold)
        note_miss(track, score, threshold, self.cfg.match.near_miss_margin)
        self.counters["matches" if score >= threshold else "non_matches_discarded"] += 1
        hit = decide(track, self.cfg.match.hits_needed)
        if hit is None and template is not None:
            hit = decide_template(track, frame.seq, *template, threshold, self.cfg.match.hits_needed)
            self.counters["template_decisions"] += hit is not None
        if hit is None or hit.subject >= len(watchlist.subject_refs):  # none due, or the list was purged mid-frame
            return None
        return self._alert(frame, face, track, watchlist, hit, threshold)

    def _confirm_rejoin(self, track: Track, idx: int, score: float, threshold: float) -> None:
        """A re-joined track's first match confirms the join, or undoes it when it names a
        subject the track's earlier history does not hold."""
        if track.rejoined_at is None or score < threshold:
            return
        before = subjects_before(track, track.rejoined_at)
        if before and idx not in before:
            self.tracker.split(track)
            self.counters["rejoins_undone"] += 1
        track.rejoined_at = None

    def _alert(self, frame: Frame, face: Face, track: Track, watchlist: Watchlist, hit: Hit,
               threshold: float) -> Alert:
        """The alert of a decided hit: a repeat sighting when the subject alerted on this camera
        within the repeat window (capture time), else a new alarm."""
        entry = watchlist.entries[hit.subject] if hit.subject < len(watchlist.entries) else {}
        alert = Alert(unit=self.cfg.unit.id, camera=frame.camera_id,
                      deployment_id=watchlist.deployment_id, subject_ref=watchlist.subject_refs[hit.subject],
                      category=str(entry.get("category", "")), score=hit.score, threshold=threshold,
                      model_id=watchlist.model_id, track_id=track.track_id, frame_seq=frame.seq,
                      quality=face.quality, capture_t_mono=frame.t_mono,
                      face_jpeg=thumbnail(frame.image, face.det, 112),
                      reference_jpeg=bytes(entry.get("thumbnail", b"")))
        key = (alert.deployment_id, alert.camera, alert.subject_ref)
        original = self.repeats.original(key, frame.t_mono)
        if original:
            alert.kind, alert.original_alert_id = "repeat_sighting", original
            self.counters["repeat_sightings"] += 1
        else:
            self.repeats.remember(key, alert.alert_id, frame.t_mono)
            self.counters["alerts"] += 1
        return alert
