"""Identification sanity on lfw-dev: one enrolment image per identity, rank-1 on the other images.

The gallery holds the first image of every identity (2,911, so the 2,062 people
with a single photo act as distractors); probes are all the other images of the
849 people with two or more. A probe whose face is not found counts as a miss.
"""
from __future__ import annotations

import json

import cv2
import numpy as np


def test_rank1_on_lfw_dev_is_at_least_95_percent(engine, lfw):
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    gallery, probes, probe_ids, misses = [], [], [], 0
    for idx, person in enumerate(people):
        photos = sorted(person.glob("*.jpg"))
        vec, _ = engine.embed_image(cv2.imread(str(photos[0])))
        gallery.append(vec if vec is not None else np.zeros(192, np.float32))
        for photo in photos[1:]:
            vec, _ = engine.embed_image(cv2.imread(str(photo)))
            if vec is None:
                misses += 1
                continue
            probes.append(vec)
            probe_ids.append(idx)
    scores = np.stack(probes) @ np.stack(gallery).T
    correct = int((scores.argmax(axis=1) == np.array(probe_ids)).sum())
    total = len(probes) + misses
    report = {"gallery": len(gallery), "probes": total, "not_acquired": misses,
              "rank1": round(correct / total, 4)}
    print(json.dumps(report))
    assert total > 3000
    assert report["rank1"] >= 0.95, report
