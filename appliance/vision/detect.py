"""Detect: BlazeFace over a pyramid of tiles so that small faces in a wide frame are found.

BlazeFace sees 128 or 192 pixels. Shrinking a 1920x1080 frame to that loses
every face under ~150 px, so the frame is also covered by overlapping square
tiles at two scales (default 320 and 768 px, i.e. 1.7x and 4x downscale for the
full-range model). A detection cut by an inner tile edge is dropped because an
overlapping tile holds the whole face; the rest are merged by NMS.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..inference.base import Model
from .blazeface import FULL_RANGE, SHORT_RANGE, AnchorSpec, decode, make_anchors

SPECS = {"blazeface-full": FULL_RANGE, "blazeface-short": SHORT_RANGE}
EDGE_MARGIN = 0.01  # fraction of a tile: a box this close to an inner edge is cut


@dataclass
class Detection:
    """A face found in a frame: box xyxy and six keypoints in frame pixels."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True)
class Region:
    """A square window of the frame fed to the detector: origin and edge in frame pixels."""

    x: int
    y: int
    size: int
    inner_edges: tuple[bool, bool, bool, bool]  # left, top, right, bottom lie inside the frame


def _axis_starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    return starts + [length - size]


def plan_regions(width: int, height: int, tile_sizes: tuple[int, ...], overlap: float,
                 whole_frame: bool) -> list[Region]:
    """The windows covering a frame: optionally the whole (letterboxed) frame, then tiles."""
    regions = [Region(0, 0, max(width, height), (False,) * 4)] if whole_frame else []
    for size in tile_sizes:
        if size >= max(width, height):
            continue
        stride = max(1, int(size * (1 - overlap)))
        for y in _axis_starts(height, size, stride):
            for x in _axis_starts(width, size, stride):
                inner = (x > 0, y > 0, x + size < width, y + size < height)
                regions.append(Region(x, y, size, inner))
    return regions


def _window(frame: np.ndarray, region: Region, input_size: int) -> np.ndarray:
    crop = frame[region.y:region.y + region.size, region.x:region.x + region.size]
    if crop.shape[0] != region.size or crop.shape[1] != region.size:
        padded = np.zeros((region.size, region.size, 3), np.uint8)
        padded[:crop.shape[0], :crop.shape[1]] = crop
        crop = padded
    interp = cv2.INTER_AREA if region.size > input_size else cv2.INTER_LINEAR
    small = cv2.resize(crop, (input_size, input_size), interpolation=interp)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 127.5 - 1.0)[None]


def _cut_by_inner_edge(box: np.ndarray, region: Region) -> bool:
    left, top, right, bottom = region.inner_edges
    m = EDGE_MARGIN
    return bool((left and box[0] < m) or (top and box[1] < m)
                or (right and box[2] > 1 - m) or (bottom and box[3] > 1 - m))


class FaceDetector:
    """BlazeFace over a tile pyramid; returns merged detections in frame pixels."""

    def __init__(self, model: Model, variant: str, score_threshold: float, nms_iou: float,
                 tile_sizes: tuple[int, ...], tile_overlap: float, whole_frame: bool) -> None:
        self.model = model
        self.spec: AnchorSpec = SPECS[variant]
        self.anchors = make_anchors(self.spec)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.tile_sizes = tile_sizes
        self.tile_overlap = tile_overlap
        self.whole_frame = whole_frame

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Find faces in a BGR frame."""
        h, w = frame.shape[:2]
        regions = plan_regions(w, h, self.tile_sizes, self.tile_overlap, self.whole_frame)
        found: list[Detection] = []
        for region in regions:
            found.extend(self.detect_region(frame, region))
        return self._merge(found)

    def detect_region(self, frame: np.ndarray, region: Region) -> list[Detection]:
        """Run the model on one window and map its detections to frame pixels."""
        raw_boxes, raw_scores = self.model.run(_window(frame, region, self.spec.input_size))
        boxes, scores, kps = decode(raw_boxes[0], raw_scores[0], self.anchors,
                                    self.spec.input_size, self.score_threshold)
        out = []
        for box, score, kp in zip(boxes, scores, kps):
            if _cut_by_inner_edge(box, region):
                continue
            scale, origin = region.size, np.array([region.x, region.y], np.float32)
            out.append(Detection(box * scale + np.tile(origin, 2), float(score), kp * scale + origin))
        return out

    def _merge(self, found: list[Detection]) -> list[Detection]:
        if not found:
            return []
        xywh = [[float(d.box[0]), float(d.box[1]), float(d.box[2] - d.box[0]), float(d.box[3] - d.box[1])]
                for d in found]
        keep = cv2.dnn.NMSBoxes(xywh, [d.score for d in found], self.score_threshold, self.nms_iou)
        return [found[i] for i in np.asarray(keep).reshape(-1)]
