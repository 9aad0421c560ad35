"""Crowd bench across seeds: each listed person's still-photo ceiling, and the figures pooled.

Eight listed people per clip is a small sample: one person the embedder cannot match is
12.5 points of recall. The bench therefore runs each shape at a fixed list of seeds, chosen
before any result was seen, and pools the counts. Beside every listed walker it reports the
embedder's own ceiling for that person: their walking photo scored against their enrolment
photo as still images, at full size and shrunk to the walker's face size, against the unit's
threshold for the list. A listed person whose stills do not match at full size is a miss of
the model at the card's threshold (its FNIR, on the accuracy card), not of the crowd pipeline;
the pooled row counts both, and the targets are judged on all listed people regardless.
"""
from __future__ import annotations

import cv2
import numpy as np

from lfr_tools.crowd import listed_photos


def still_scores(engine, truth: dict, lfw, threshold: float) -> dict[str, dict]:
    """Identity -> its walking photo's cosine score against its enrolment photo, as stills: at
    full size ("full"), and shrunk to the walker's face height then enlarged back ("at_size",
    the detail a face of that size carries), with "matchable" (full >= threshold)."""
    out: dict[str, dict] = {}
    for walker in truth["walkers"]:
        if not walker["listed"]:
            continue
        walking, enrolment = listed_photos(lfw / walker["identity"])
        reference, _ = engine.embed_image(cv2.imread(str(enrolment)))
        photo = cv2.imread(str(walking))
        probe, box = engine.embed_image(photo)
        if reference is None or probe is None:
            out[walker["identity"]] = {"full": None, "at_size": None, "matchable": False}
            continue
        shrink = walker["face_px"] / max(float(box[3] - box[1]), 1.0)
        small = cv2.resize(photo, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        blurred, _ = engine.embed_image(cv2.resize(small, photo.shape[1::-1], interpolation=cv2.INTER_LINEAR))
        full = float(reference @ probe)
        at_size = None if blurred is None else round(float(reference @ blurred), 3)
        out[walker["identity"]] = {"full": round(full, 3), "at_size": at_size, "matchable": full >= threshold}
    return out


def pooled(by_seed: dict[int, dict], need: float, targets: dict) -> dict:
    """One shape's runs at each seed pooled: listed people alerted over all seeds (and over those
    the embedder matches as stills), false and duplicate alerts summed, coverage averaged, the
    worst first-detection p90, who was missed (seed, still scores), and each target met."""
    rows = list(by_seed.values())
    listed = sum(r["listed"] for r in rows)
    alerted = sum(r["listed_alerted"] for r in rows)
    missed = [{"seed": seed, "identity": name, **row.get("still", {}).get(name, {})}
              for seed, row in by_seed.items() for name in row["missed"]]
    matchable = sum(s["matchable"] for r in rows for s in r.get("still", {}).values())
    unmatchable_missed = sum(not m.get("matchable", True) for m in missed)
    p90s = [r["first_detection_s"]["p90"] for r in rows]
    out = {"seeds": list(by_seed), "listed": listed, "listed_alerted": alerted,
           "listed_alerted_fraction": round(alerted / max(listed, 1), 3),
           "listed_matchable_as_stills": matchable,
           "matchable_alerted": matchable - (len(missed) - unmatchable_missed),
           "missed": missed, "missed_not_matchable_as_stills": unmatchable_missed,
           "false_alerts": sum(r["false_alerts"] for r in rows),
           "duplicate_alerts": sum(r["duplicate_alerts"] for r in rows),
           "repeat_sightings": sum(r["repeat_sightings"] for r in rows),
           "coverage": round(float(np.mean([r["coverage"] for r in rows])), 4),
           "coverage_min": min(r["coverage"] for r in rows),
           "first_detection_p90_s_worst": None if None in p90s else max(p90s),
           "frames_per_s": round(float(np.mean([r["frames_per_s"] for r in rows])), 2),
           "frames_dropped": sum(r["frames_dropped"] for r in rows),
           "cpu_use": round(float(np.mean([r["cpu"]["use"] for r in rows])), 3),
           "plan_staleness_max_ms": max((r.get("search_plan", {}).get("plan_staleness_max_ms", 0) for r in rows),
                                        default=0)}
    p90 = out["first_detection_p90_s_worst"]
    out["met"] = {"listed_alerted": out["listed_alerted_fraction"] >= need,
                  "false_alerts": out["false_alerts"] <= targets["false_alerts"],
                  "duplicate_alerts": out["duplicate_alerts"] <= targets["duplicate_alerts"],
                  "coverage": out["coverage_min"] >= targets["coverage"],
                  "first_detection_p90": p90 is not None and p90 <= targets["first_detection_p90_s"]}
    return out
