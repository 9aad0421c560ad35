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
FOCUS_SCALE = 2.5  # focus window edge / face size: the face fills ~40%, as short-range expects


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


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (w, h): area-average halvings first (OpenCV's fast exact-2x path),
    then one area or linear step; 2-3x faster than one area resize by a fractional factor."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_AREA if image.shape[1] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _window(frame: np.ndarray, region: Region, input_size: int) -> np.ndarray:
    crop = frame[region.y:region.y + region.size, region.x:region.x + region.size]
    if crop.shape[0] == region.size and crop.shape[1] == region.size:
        small = _resize(crop, (input_size, input_size))
    else:  # a window past the frame's edge: scale what is there, then pad (not pad 1280x1280, then scale)
        scale = input_size / region.size
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        small = np.zeros((input_size, input_size, 3), np.uint8)
        small[:size[1], :size[0]] = _resize(crop, size)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 127.5 - 1.0)[None]


def _cut_by_inner_edge(box: np.ndarray, region: Region) -> bool:
    left, top, right, bottom = region.inner_edges
    m = EDGE_MARGIN
    return bool((left and box[0] < m) or (top and box[1] < m)
                or (right and box[2] > 1 - m) or (bottom and box[3] > 1 - m))


@dataclass(frozen=True)
class Net:
    """One BlazeFace variant on a backend, with its anchors."""

    model: Model
    spec: AnchorSpec
    anchors: np.ndarray

    @classmethod
    def of(cls, model: Model, variant: str) -> "Net":
        """Wrap a loaded model of ``variant`` (a key of SPECS)."""
        return cls(model, SPECS[variant], make_anchors(SPECS[variant]))


def focus_region(box: np.ndarray, width: int, height: int) -> Region:
    """A square window around a predicted face box, the face filling about 40% of it."""
    side = float(max(box[2] - box[0], box[3] - box[1]))
    size = int(min(max(FOCUS_SCALE * side, 64), min(width, height)))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x = int(min(max(cx - size / 2, 0), width - size))
    y = int(min(max(cy - size / 2, 0), height - size))
    return Region(x, y, size, (x > 0, y > 0, x + size < width, y + size < height))


class FaceDetector:
    """BlazeFace over a tile pyramid; returns merged detections in frame pixels.

    On a single image every window is searched. In a stream (``seq`` given) the
    whole frame is searched every frame (near faces, found at once), the tiles in
    turn, ``discovery_windows`` per frame, and every live track gets a small focus
    window around its predicted box, searched by the short-range model when one is
    given. New far faces are thus found within a few frames, and known faces are
    followed cheaply in every frame.
    """

    def __init__(self, net: Net, score_threshold: float, nms_iou: float, tile_sizes: tuple[int, ...],
                 tile_overlap: float, whole_frame: bool, discovery_windows: int = 0,
                 focus_net: Net | None = None) -> None:
        self.net = net
        self.focus_net = focus_net or net
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.tile_sizes = tile_sizes
        self.tile_overlap = tile_overlap
        self.whole_frame = whole_frame
        self.discovery_windows = discovery_windows

    def models(self) -> list:
        """The full-range model and the focus model (the same one when no short-range model is given)."""
        return list({id(m): m for m in (self.net.model, self.focus_net.model)}.values())

    def detect(self, frame: np.ndarray, seq: int | None = None,
               focus: list[np.ndarray] | tuple = ()) -> list[Detection]:
        """Find faces in a BGR frame (all windows when ``seq`` is None)."""
        h, w = frame.shape[:2]
        found: list[Detection] = []
        for region in self.windows(w, h, seq):
            found.extend(self.detect_region(frame, region))
        for box in focus:
            found.extend(self.detect_region(frame, focus_region(box, w, h), self.focus_net))
        return self._merge(found)

    def windows(self, width: int, height: int, seq: int | None) -> list[Region]:
        """The full-range windows to search in frame ``seq`` (all of them when seq is None).

        In a stream the whole frame is searched every frame and the tiles in turn,
        ``discovery_windows`` of them per frame, so the frame is covered every
        ceil(tiles / discovery_windows) frames.
        """
        regions = plan_regions(width, height, self.tile_sizes, self.tile_overlap, self.whole_frame)
        budget = self.discovery_windows
        whole = regions[:1] if self.whole_frame else []
        tiles = regions[len(whole):]
        if seq is None or budget <= 0 or budget >= len(tiles):
            return regions
        start = (seq * budget) % len(tiles)
        return whole + [tiles[(start + i) % len(tiles)] for i in range(budget)]

    def detect_region(self, frame: np.ndarray, region: Region, net: Net | None = None) -> list[Detection]:
        """Run a model on one window and map its detections to frame pixels."""
        net = net or self.net
        raw_boxes, raw_scores = net.model.run(_window(frame, region, net.spec.input_size))
        boxes, scores, kps = decode(raw_boxes[0], raw_scores[0], net.anchors,
                                    net.spec.input_size, self.score_threshold)
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
