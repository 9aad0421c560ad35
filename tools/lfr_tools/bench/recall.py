"""Detector recall on composed 1920x1080 crowd scenes with known face boxes.

Twenty real faces per scene are pasted on a textured background at one face
height; a face counts as found when a detection overlaps its box with IoU >= 0.4.
Needs labelled face photos (../shared/datasets/lfw-dev); the benchmark reports
"skipped" with the reason where they are absent.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from lfr_tools.paths import LFW_DEV
from appliance.pipeline.track import iou
from lfr_tools.scenes import Sprite, background, labelled_sprite, paste

HEIGHTS = (24, 32, 48, 64)
FACES_PER_SCENE = 20
IOU_FOUND = 0.4
LFW = LFW_DEV


def lfw_sprites(engine, lfw: Path, count: int) -> list[Sprite]:
    """Heads of ``count`` different lfw-dev people (first photo of each, face found)."""
    sprites = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        sprite = labelled_sprite(engine, cv2.imread(str(sorted(person.glob("*.jpg"))[0])), person.name)
        if sprite is not None:
            sprites.append(sprite)
        if len(sprites) == count:
            break
    return sprites


def crowd_scene(sprites: list[Sprite], height: int, seed: int,
                size: tuple[int, int] = (1920, 1080)) -> tuple[np.ndarray, list[np.ndarray]]:
    """A frame with every sprite pasted at ``height`` on a jittered 5x4 grid; returns frame and boxes."""
    rng = np.random.default_rng(seed)
    frame = background(size, seed=seed)
    w, h = size
    boxes = []
    for i, sprite in enumerate(sprites):
        col, row = i % 5, i // 5
        cx = (col + 0.5) * w / 5 + rng.uniform(-0.3, 0.3) * w / 5
        cy = (row + 0.5) * h / 4 + rng.uniform(-0.3, 0.3) * h / 4
        boxes.append(paste(frame, sprite, cx, cy, height))
    return frame, boxes


def recall_at(engine, sprites: list[Sprite], height: int, scenes: int) -> dict:
    """Recall and mean detect time over ``scenes`` crowd scenes at one face height."""
    found = total = false_pos = 0
    seconds = 0.0
    for seed in range(scenes):
        frame, truth = crowd_scene(sprites, height, seed)
        start = time.perf_counter()
        dets = engine.detector.detect(frame)
        seconds += time.perf_counter() - start
        matched = [any(iou(t, d.box) >= IOU_FOUND for d in dets) for t in truth]
        found += sum(matched)
        total += len(truth)
        false_pos += sum(not any(iou(t, d.box) >= IOU_FOUND for t in truth) for d in dets)
    return {"face_height_px": height, "recall": round(found / total, 4), "faces": total,
            "false_detections": false_pos, "detect_ms_per_frame": round(1000 * seconds / scenes, 1)}


def measure_recall(engine, lfw: Path = LFW, scenes: int = 3) -> list[dict]:
    """Recall at each face height in HEIGHTS."""
    sprites = lfw_sprites(engine, lfw, FACES_PER_SCENE * scenes)
    rows = []
    for height in HEIGHTS:
        rows.append(recall_at(engine, sprites[:FACES_PER_SCENE], height, scenes))
    return rows


def run(out_dir: Path) -> dict:
    """Benchmark entry point: recall table, or a stated skip."""
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    if not LFW.is_dir():
        return {"skipped": f"{LFW} absent: detector recall needs labelled face photos"}
    return {"scene": "1920x1080, 20 lfw-dev faces, textured background, IoU>=0.4",
            "rows": measure_recall(FaceEngine.from_config(Config()))}
