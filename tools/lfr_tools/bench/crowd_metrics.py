"""Scoring a crowd run against its ground truth: alerts per walker, coverage, delays.

Pure functions over plain data (truth.json of lfr_tools.crowd, the detections a bench probe
saw per frame, the alerts with the box they were raised on), so the tests can feed them
small synthetic inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.pipeline.track import iou
from lfr_tools.crowd import full_appearance, visible

IOU_FOUND = 0.4  # a detection finds a ground-truth face at this IoU (as the recall bench)
IOU_ALERT = 0.3  # an alert's face box belongs to the walker it overlaps most, at least this much


@dataclass(frozen=True)
class AlertSeen:
    """An alert as the bench saw it: subject, frame, the face box it was raised on (None: not
    found among the frame's detections), its capture-to-alert latency and its kind ("alarm" or
    "repeat_sighting")."""

    subject_ref: str
    frame_seq: int
    box: tuple[float, float, float, float] | None
    latency_s: float = 0.0
    kind: str = "alarm"


def walker_at(truth: dict, seq: int, box) -> int | None:
    """The walker whose face box in frame ``seq`` overlaps ``box`` most (IoU >= IOU_ALERT)."""
    if box is None or not 0 <= seq < len(truth["frames"]):
        return None
    best, best_iou = None, IOU_ALERT
    for row in truth["frames"][seq]:
        overlap = iou(np.asarray(row["box"]), np.asarray(box))
        if overlap >= best_iou:
            best, best_iou = row["walker"], overlap
    return best


def score_alerts(truth: dict, alerts: list[AlertSeen]) -> dict:
    """Listed walkers alerted, false alerts (a non-listed walker, the wrong subject, or a box on
    nobody: alarm or repeat sighting alike), duplicate alerts (more than one correct alarm for one
    walker's pass) and correct repeat sightings (not duplicates: they ring no new alarm)."""
    walkers = truth["walkers"]
    correct: dict[int, list[AlertSeen]] = {}
    false = []
    for alert in alerts:
        index = walker_at(truth, alert.frame_seq, alert.box)
        ref = walkers[index]["subject_ref"] if index is not None else None
        if ref is not None and ref == alert.subject_ref:
            correct.setdefault(index, []).append(alert)
        else:
            false.append({"subject_ref": alert.subject_ref, "frame_seq": alert.frame_seq, "kind": alert.kind,
                          "walker": index, "walker_listed": index is not None and walkers[index]["listed"]})
    listed = [i for i, w in enumerate(walkers) if w["listed"]]
    alarms = {i: [a for a in v if a.kind == "alarm"] for i, v in correct.items()}
    alarms = {i: v for i, v in alarms.items() if v}  # a listed walker counts alerted by an alarm
    return {"listed": len(listed), "listed_alerted": len(alarms),
            "false_alerts": len(false), "false_detail": false,
            "duplicate_alerts": sum(len(v) - 1 for v in alarms.values()),
            "repeat_sightings": sum(len(v) for v in correct.values()) - sum(len(v) for v in alarms.values()),
            "first_alerts": {i: min(v, key=lambda a: a.frame_seq) for i, v in alarms.items()},
            "missed": [walkers[i]["identity"] for i in listed if i not in alarms]}


def _found(rows: list[dict], boxes: list) -> set[int]:
    """Walkers of ``rows`` found by a detection among ``boxes``."""
    found = set()
    for row in rows:
        truth_box = np.asarray(row["box"])
        if any(iou(truth_box, np.asarray(b)) >= IOU_FOUND for b in boxes):
            found.add(row["walker"])
    return found


def coverage(truth: dict, detections: dict[int, list]) -> dict:
    """Visible faces detected / visible faces, per processed frame, averaged over the processed
    frames that show any face; the per-frame curve (None: no face shown, or frame dropped); and
    the average over every frame showing a face, a dropped frame detecting none."""
    processed: list[float] = []
    every: list[float] = []
    per_frame: list[float | None] = []
    for seq, rows in enumerate(truth["frames"]):
        shown = [r for r in rows if visible(r, truth["occluded_above"])]
        value = len(_found(shown, detections[seq])) / len(shown) if shown and seq in detections else None
        per_frame.append(None if value is None else round(value, 3))
        if value is not None:
            processed.append(value)
        if shown:
            every.append(value or 0.0)
    return {"coverage": round(float(np.mean(processed)), 4) if processed else 0.0,
            "coverage_all_frames": round(float(np.mean(every)), 4) if every else 0.0,
            "per_frame": per_frame}


def first_detections(truth: dict, detections: dict[int, list]) -> dict[int, int]:
    """Walker -> first processed frame where a detection finds its face (in frame or partly)."""
    first: dict[int, int] = {}
    for seq in sorted(detections):
        if seq >= len(truth["frames"]):
            continue
        for walker in _found(truth["frames"][seq], detections[seq]):
            first.setdefault(walker, seq)
    return first


def percentiles(values: list[float]) -> dict:
    """p50 and p90 (seconds) and the count; None when there are no values."""
    if not values:
        return {"p50": None, "p90": None, "n": 0}
    return {"p50": round(float(np.percentile(values, 50)), 3),
            "p90": round(float(np.percentile(values, 90)), 3), "n": len(values)}


def delays(truth: dict, detections: dict[int, list], first_alerts: dict[int, AlertSeen]) -> dict:
    """Time from each walker's full appearance to its first detection (every walker wholly
    seen) and to its alert (listed walkers alerted), in seconds of clip time (+ alert latency)."""
    fps = truth["fps"]
    appear = full_appearance(truth)
    found = first_detections(truth, detections)
    to_detect = [max(0, found[w] - f0) / fps for w, f0 in appear.items() if w in found]
    to_alert = [max(0.0, (a.frame_seq - appear[w]) / fps + a.latency_s)
                for w, a in first_alerts.items() if w in appear]
    return {"first_detection_s": percentiles(to_detect),
            "never_detected": sum(w not in found for w in appear),
            "alert_s": percentiles(to_alert)}
