"""BlazeFace (MediaPipe) decoding: SSD anchors, box and keypoint regression, scores.

The anchor layouts follow MediaPipe's face_detection_{short,full}_range graphs
(SsdAnchorsCalculator options). Raw outputs are 16 values per anchor: box centre
x, y, width, height, then six keypoints (x, y) in input pixels relative to the anchor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor options of one BlazeFace variant."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


SHORT_RANGE = AnchorSpec(128, (8, 16), (2, 6))
FULL_RANGE = AnchorSpec(192, (4,), (1,))

# Keypoint order in the model output (image left/right as the camera sees the face).
KEYPOINTS = ("eye_right", "eye_left", "nose_tip", "mouth_center", "ear_right", "ear_left")


def make_anchors(spec: AnchorSpec) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] input coordinates, in model output order."""
    rows = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell):
        cells = spec.input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        rows.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(rows).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           input_size: int, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's outputs into (boxes xyxy, scores, keypoints (K, 6, 2)), all in [0, 1].

    Only anchors scoring at least ``min_score`` are decoded.
    """
    logits = np.clip(raw_scores.reshape(-1), -80.0, 80.0)  # float32 exp overflows past ~88
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    raw = raw_boxes.reshape(-1, 16)[keep] / input_size
    centre = anchors[keep]
    cx, cy = raw[:, 0] + centre[:, 0], raw[:, 1] + centre[:, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + centre[:, None, :]
    return boxes, scores[keep], keypoints
