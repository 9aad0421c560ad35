"""Detect: BlazeFace over a pyramid of tiles so that small faces in a wide frame are found.

BlazeFace sees 128 or 192 pixels. Shrinking a 1920x1080 frame to that loses
every face under ~150 px, so the frame is also covered by overlapping square
tiles at two scales (default 320 and 768 px, i.e. 1.7x and 4x downscale for the
full-range model). A detection cut by an inner tile edge is dropped because an
overlapping tile holds the whole face; the rest are merged by NMS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..inference.base import Model
from .blazeface import FULL_RANGE, SHORT_RANGE, AnchorSpec, decode, make_anchors
from .motion import MotionMap
from .plan import Choice, SearchPlan
from .pool import WindowPool

SPECS = {"blazeface-full": FULL_RANGE, "blazeface-short": SHORT_RANGE}
EDGE_MARGIN = 0.01  # fraction of a tile: a box this close to an inner edge is cut
FOCUS_SCALE = 2.5  # focus window edge / face size: the face fills ~40%, as short-range expects
MIN_FOCUS_PX = 64


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
    box = np.asarray(box, np.float64)
    side = float(max(box[2] - box[0], box[3] - box[1]))
    return _square(box[:2], box[2:], FOCUS_SCALE * side, width, height)


def focus_regions(boxes: Sequence[np.ndarray], width: int, height: int, merge_scale: float = 0.0) -> list[Region]:
    """The focus windows of a frame's predicted face boxes, in their order.

    With ``merge_scale`` over FOCUS_SCALE, tracks close together share a window: starting from
    each box in turn, the nearest boxes join it while the window holding them all, with the
    usual margin round the largest, stays within ``merge_scale`` times the smallest face's
    side (the short-range model found 99.1-99.2% of crowd-clip faces filling a sixth of its
    window, 90.4-90.5% at an eighth: ``appliance bench --only window_scale``). A window takes
    its first box's place.
    """
    arr = np.asarray(boxes, np.float64).reshape(-1, 4)
    if merge_scale <= FOCUS_SCALE:
        return [focus_region(b, width, height) for b in arr]
    sides = np.maximum(arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1])
    left, out = list(range(len(arr))), []
    while left:
        first = left.pop(0)
        lo, hi, small, big = arr[first, :2], arr[first, 2:], sides[first], sides[first]
        while left:
            cand = np.array(left)
            nlo, nhi = np.minimum(lo, arr[cand, :2]), np.maximum(hi, arr[cand, 2:])
            edge = (nhi - nlo).max(1) + (FOCUS_SCALE - 1) * np.maximum(big, sides[cand])
            fits = edge <= merge_scale * np.minimum(small, sides[cand])
            if not fits.any():
                break
            j = int(np.argmin(np.where(fits, edge, np.inf)))
            lo, hi = nlo[j], nhi[j]
            small, big = min(small, sides[cand[j]]), max(big, sides[cand[j]])
            left.remove(int(cand[j]))
        out.append(_square(lo, hi, float((hi - lo).max() + (FOCUS_SCALE - 1) * big), width, height))
    return out


def _square(lo: np.ndarray, hi: np.ndarray, edge: float, width: int, height: int) -> Region:
    """The square window of ``edge`` px (at least MIN_FOCUS_PX, at most the frame's shorter side)
    centred on the box ``lo``-``hi``, moved inside the frame."""
    size = int(min(max(edge, MIN_FOCUS_PX), min(width, height)))
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
    x = int(min(max(cx - size / 2, 0), width - size))
    y = int(min(max(cy - size / 2, 0), height - size))
    return Region(x, y, size, (x > 0, y > 0, x + size < width, y + size < height))


@dataclass(frozen=True)
class SearchSettings:
    """How the detector searches a frame: see [detect] in config.py."""

    score_threshold: float = 0.5
    nms_iou: float = 0.3
    tile_sizes: tuple[int, ...] = (320, 768)
    tile_overlap: float = 0.25
    whole_frame: bool = True
    discovery_windows: int = 0
    focus_merge_scale: float = 0.0  # tracks close together share a focus window up to this (see focus_regions)


Slot = tuple[Net, Net]  # one worker's full-range net and focus net
Job = tuple[Region, bool]  # a window and whether it is a focus window


class FaceDetector:
    """BlazeFace over a tile pyramid; returns merged detections in frame pixels.

    On a single image every window is searched. In a stream (``seq`` given) the windows
    come from the search plan: with a :class:`SearchPlan` (the deadline plan) focus windows
    around the live tracks first, then as many discovery windows (the whole frame and the
    tiles, stalest first) as fit the frame's time budget; without one (the fixed plan) the
    whole frame every frame, ``discovery_windows`` tiles in turn and every focus window.
    Focus windows run the short-range model when one is given. The windows of a frame run
    over the pool's workers, each with its own copy of the nets. With a ``motion`` map the
    plan is told which tiles changed where no live track explains it (motion.py).
    """

    def __init__(self, slots: list[Slot], search: SearchSettings, plan: SearchPlan | None = None,
                 motion: MotionMap | None = None) -> None:
        self.net, self.focus_net = slots[0]
        self.pool: WindowPool[Slot] = WindowPool(slots)
        self.search = search
        self.plan = plan
        self.motion = motion

    def models(self) -> list:
        """Every worker's full-range and focus models, once each."""
        found = [m for net, focus in self.pool.slots for m in (net.model, focus.model)]
        return list({id(m): m for m in found}.values())

    def detect(self, frame: np.ndarray, seq: int | None = None,
               focus: list[np.ndarray] | tuple = (), paced: bool = True) -> list[Detection]:
        """Find faces in a BGR frame (all windows when ``seq`` is None); ``paced`` False: an unpaced
        replay, planned at the nominal frame rate."""
        h, w = frame.shape[:2]
        regions = plan_regions(w, h, self.search.tile_sizes, self.search.tile_overlap, self.search.whole_frame)
        if seq is None or self.plan is None:
            near = focus_regions(focus, w, h, self.search.focus_merge_scale)
            jobs = [(r, False) for r in self.windows(w, h, seq)] + [(r, True) for r in near]
            return self._merge(self._run(frame, jobs))
        choice = self._choose(frame, seq, regions, focus, paced)
        jobs = [(r, True) for r in choice.focus] + [(regions[i], False) for i in choice.tiles]
        # an unpaced replay waits for no clock: its analyse and finish stages already fill both
        # cores, and more threads would only contend with the finish stage (measured: slower)
        found = self._run(frame, jobs, choice, parallel=paced)
        self.plan.done(choice)
        return self._merge(found)

    def _choose(self, frame: np.ndarray, seq: int, regions: list[Region], focus: list[np.ndarray] | tuple,
                paced: bool) -> Choice:
        h, w = frame.shape[:2]
        full, near = _cost_key(self.net), _cost_key(self.focus_net)
        windows = [(r, near) for r in focus_regions(focus, w, h, self.search.focus_merge_scale)]
        moved = None if self.motion is None else self.motion.moved(frame, focus, regions, seq)
        return self.plan.choose(seq, [(r.size, full) for r in regions], windows, paced, moved)

    def _run(self, frame: np.ndarray, jobs: list[Job], choice: Choice | None = None,
             parallel: bool = True) -> list[Detection]:
        def run(slot: Slot, job: Job) -> list[Detection]:
            net = slot[1] if job[1] else slot[0]
            if choice is None:
                return self.detect_region(frame, job[0], net)
            start = self.plan.clock()
            found = self.detect_region(frame, job[0], net)
            self.plan.ran(_cost_key(net), self.plan.clock() - start)
            return found
        return [d for found in self.pool.map(run, jobs, parallel) for d in found]

    def windows(self, width: int, height: int, seq: int | None) -> list[Region]:
        """The fixed plan's full-range windows in frame ``seq`` (all of them when seq is None).

        The whole frame is searched every frame and the tiles in turn,
        ``discovery_windows`` of them per frame, so the frame is covered every
        ceil(tiles / discovery_windows) frames.
        """
        s = self.search
        regions = plan_regions(width, height, s.tile_sizes, s.tile_overlap, s.whole_frame)
        budget = s.discovery_windows
        whole = regions[:1] if s.whole_frame else []
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
                                    net.spec.input_size, self.search.score_threshold)
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
        s = self.search
        keep = cv2.dnn.NMSBoxes(xywh, [d.score for d in found], s.score_threshold, s.nms_iou)
        return [found[i] for i in np.asarray(keep).reshape(-1)]


def _cost_key(net: Net) -> tuple[str, int]:
    """What a window's cost depends on: the model and its input size."""
    return (net.model.name, net.spec.input_size)
