"""SCRFD (insightface) face detection: output decoding, NMS and a detector on any pixel-input model.

The Hailo Model Zoo compiles scrfd_2.5g / scrfd_10g to 640x640 HEFs with nine outputs:
for each stride 8, 16 and 32 a box map (H, W, 8), a score map (H, W, 2) and a keypoint
map (H, W, 20), two anchors per grid location (docs/hardware.md). Outputs are told apart
by their shape, not their names or order, which the zoo does not document as stable.
Decoding (all in input pixels): anchor centre (x * stride, y * stride); box = distances
left, top, right, bottom in stride units; keypoints = offsets in stride units; scores are
probabilities already (the sigmoid is in the graph).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ModelError
from .detect import Detection

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
CHANNELS = {"boxes": 4 * ANCHORS_PER_CELL, "scores": ANCHORS_PER_CELL, "keypoints": 10 * ANCHORS_PER_CELL}


@dataclass(frozen=True)
class Branch:
    """The three output maps of one stride, each flattened to one row per anchor."""

    stride: int
    boxes: np.ndarray  # (N, 4) distances in stride units
    scores: np.ndarray  # (N,)
    keypoints: np.ndarray  # (N, 10) offsets in stride units
    cells: tuple[int, int]  # grid (rows, cols)


def _as_hwc(tensor: np.ndarray) -> np.ndarray:
    array = np.asarray(tensor, np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ModelError(f"SCRFD output of shape {array.shape} is not (H, W, C)",
                         fix="use a SCRFD HEF from the Hailo Model Zoo (scrfd_2.5g or scrfd_10g)")
    return array


def split_outputs(outputs: list[np.ndarray], input_size: int) -> list[Branch]:
    """Sort the nine raw outputs into one :class:`Branch` per stride by their shapes."""
    maps: dict[tuple[int, str], np.ndarray] = {}
    kinds = {c: k for k, c in CHANNELS.items()}
    for tensor in outputs:
        hwc = _as_hwc(tensor)
        kind = kinds.get(hwc.shape[2])
        if kind is not None and hwc.shape[0] > 0:
            maps[(input_size // hwc.shape[0], kind)] = hwc
    branches = []
    for stride in STRIDES:
        missing = [k for k in CHANNELS if (stride, k) not in maps]
        if missing:
            raise ModelError(f"SCRFD outputs lack the stride-{stride} {', '.join(missing)} map(s) "
                             f"for a {input_size} px input",
                             fix="use a SCRFD HEF from the Hailo Model Zoo (9 outputs, strides 8/16/32)")
        box, score, kps = (maps[(stride, k)] for k in ("boxes", "scores", "keypoints"))
        branches.append(Branch(stride, box.reshape(-1, 4), score.reshape(-1), kps.reshape(-1, 10),
                               (box.shape[0], box.shape[1])))
    return branches


def anchor_centres(rows: int, cols: int, stride: int) -> np.ndarray:
    """(rows * cols * 2, 2) anchor centres in input pixels, the two anchors of a cell adjacent."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, ANCHORS_PER_CELL, axis=0)


def decode(outputs: list[np.ndarray], input_size: int,
           score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs -> (boxes (K, 4) xyxy, scores (K,), keypoints (K, 5, 2)) in input pixels, before NMS."""
    boxes, scores, kps = [], [], []
    for branch in split_outputs(outputs, input_size):
        keep = np.flatnonzero(branch.scores >= score_threshold)
        centres = anchor_centres(*branch.cells, branch.stride)[keep]
        dist = branch.boxes[keep] * branch.stride
        boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
        offsets = branch.keypoints[keep].reshape(-1, 5, 2) * branch.stride
        kps.append(centres[:, None, :] + offsets)
        scores.append(branch.scores[keep])
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        lt = np.maximum(boxes[best, :2], boxes[rest, :2])
        rb = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def letterbox(frame_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The frame scaled to fit ``size`` square (top-left, black padding) as RGB uint8, and the scale."""
    h, w = frame_bgr.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(frame_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized[..., ::-1]
    return canvas, scale


def to_detection(box: np.ndarray, score: float, five: np.ndarray) -> Detection:
    """A Detection whose keypoints follow the engine's order: eye, eye, nose, mouth centre, then
    the two mouth corners (align uses the first four, the quality gate the first three)."""
    mouth_centre = (five[3] + five[4]) / 2
    keypoints = np.stack([five[0], five[1], five[2], mouth_centre, five[3], five[4]]).astype(np.float32)
    return Detection(box.astype(np.float32), float(score), keypoints)


class SCRFDDetector:
    """SCRFD on a model that takes RGB uint8 pixels (normalisation in the network, as the zoo HEFs)."""

    def __init__(self, model, score_threshold: float, nms_iou: float) -> None:
        self.model = model
        self.input_size = int(model.input_shape[1])
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def models(self) -> list:
        """The one SCRFD model."""
        return [self.model]

    def detect(self, frame: np.ndarray, seq: int | None = None, focus=(), paced: bool = True) -> list[Detection]:
        """Faces in a BGR frame, in frame pixels. One whole-frame pass: ``seq``, ``focus`` and ``paced``
        are accepted for the detector protocol and not needed (the NPU sees every frame whole)."""
        pixels, scale = letterbox(frame, self.input_size)
        outputs = self.model.run(pixels[None])
        boxes, scores, kps = decode(outputs, self.input_size, self.score_threshold)
        keep = nms(boxes, scores, self.nms_iou)
        return [to_detection(boxes[i] / scale, scores[i], kps[i] / scale) for i in keep]
