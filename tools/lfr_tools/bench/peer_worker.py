"""The peer side of the peer benchmark: face_recognition (dlib) run in its own venv.

Run by appliance/bench/peer.py as a subprocess with the peer venv's Python; it
imports nothing from the appliance, only face_recognition, numpy and Pillow.
  peer_worker.py clips FRAMES.npz OUT.json   # per-frame detect + encode times
  peer_worker.py probes PATHS.txt OUT.npz    # one 128-D descriptor per image
The library's defaults are used throughout (HOG detector, one upsample, "small"
landmarks, one jitter), as a user following its README would run it.
"""
from __future__ import annotations

import json
import sys
import time

import face_recognition
import numpy as np


def central(locations: list, shape: tuple) -> tuple:
    """The (top, right, bottom, left) box nearest the image centre."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(locations, key=lambda b: ((b[0] + b[2]) / 2 - cy) ** 2 + ((b[1] + b[3]) / 2 - cx) ** 2)


def run_clips(frames_path: str, out_path: str) -> None:
    """Time face_locations + face_encodings on every frame of every clip (RGB uint8)."""
    clips = np.load(frames_path)
    result = {}
    for name in clips.files:
        frames = clips[name]
        face_recognition.face_encodings(frames[0], face_recognition.face_locations(frames[0]))  # warm-up
        rows = []
        for frame in frames:
            t0 = time.perf_counter()
            locations = face_recognition.face_locations(frame)
            t1 = time.perf_counter()
            face_recognition.face_encodings(frame, locations)
            t2 = time.perf_counter()
            rows.append({"faces": len(locations), "detect_ms": (t1 - t0) * 1e3, "encode_ms": (t2 - t1) * 1e3,
                         "total_ms": (t2 - t0) * 1e3})
        result[name] = rows
    with open(out_path, "w") as fh:
        json.dump(result, fh)


def run_probes(list_path: str, out_path: str) -> None:
    """Descriptor of the most central face of each image; zeros and ok=False where none."""
    with open(list_path) as fh:
        paths = [line.rstrip("\n") for line in fh if line.strip()]
    vectors = np.zeros((len(paths), 128), np.float32)
    ok = np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        image = face_recognition.load_image_file(path)
        locations = face_recognition.face_locations(image)
        if locations:
            vectors[i] = face_recognition.face_encodings(image, [central(locations, image.shape)])[0]
            ok[i] = True
    np.savez(out_path, embeddings=vectors, ok=ok, seconds=np.array(time.perf_counter() - t0))


if __name__ == "__main__":
    mode, source, dest = sys.argv[1:4]
    {"clips": run_clips, "probes": run_probes}[mode](source, dest)
