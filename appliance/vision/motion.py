"""The motion prior of the search plan: where the frame changed that no live track explains.

A new face does not appear out of nothing: someone walks in at the edge of the view or steps
out from behind a nearer head, and the frame changes there. Each frame is shrunk to a grey
map of about 8 px cells (area averaging, which also averages the sensor noise of a dark
frame away), differenced against the previous frame's map, and the cells the live tracks'
heads account for are cleared. Each patch of changed cells left flags one discovery tile,
the smallest that holds it whole, nearest its centre (one search finds what is there;
flagging every tile that overlaps it would flag most of a crowded frame); the plan
(plan.py) searches flagged tiles as if they had gone unsearched for longer.

Nothing here is kept past the next frame but the previous grey map, a thumbnail too coarse
to show a face (a 28 px face is 3-4 cells across).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

CELL_PX = 8  # the map's cell edge in frame pixels, about (halvings of the frame)
MIN_MAP_PX = 64  # a frame is not halved below this width
CHANGE_GREY = 6.0  # a cell whose grey changed more than this (after the frame's median change) moved
HEAD_MARGIN = 1.2  # a track's head: its predicted face box grown by this many face sides each way
MIN_CELLS = 4  # changed cells a patch needs to flag a tile: an isolated noisy cell is not a person


class MotionMap:
    """Per frame: which discovery regions changed where no live track's head is."""

    def __init__(self, change_grey: float = CHANGE_GREY, min_cells: int = MIN_CELLS) -> None:
        self.change_grey = change_grey
        self.min_cells = min_cells
        self._prev: np.ndarray | None = None
        self._seq = -1

    def moved(self, frame: np.ndarray, tracked: Sequence[np.ndarray], regions: Sequence,
              seq: int | None = None) -> np.ndarray:
        """A bool per region (objects with x, y, size in frame pixels): it holds unexplained change
        since the previous frame. All False on the first frame, after the frame size changed, or
        when ``seq`` (the frame's sequence number) starts again: a new stream."""
        if seq is not None:
            if seq <= self._seq:
                self.reset()
            self._seq = seq
        grey, scale = _grey_map(frame)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return np.zeros(len(regions), bool)
        changed = _changed(grey, prev, self.change_grey)
        for box in tracked:
            _clear_head(changed, np.asarray(box, np.float64) / scale)
        return _flag_tiles(changed, regions, scale, self.min_cells)

    def reset(self) -> None:
        """Forget the previous frame (a new stream)."""
        self._prev = None
        self._seq = -1


def _grey_map(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame halved (area averaging) until its cells are about CELL_PX, in grey; and the frame
    pixels per map cell."""
    small = frame
    while small.shape[1] >= 2 * MIN_MAP_PX and frame.shape[1] / small.shape[1] < CELL_PX:
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return small.astype(np.float32), frame.shape[1] / small.shape[1]


def _changed(grey: np.ndarray, prev: np.ndarray, threshold: float) -> np.ndarray:
    """Cells whose grey changed by more than ``threshold`` beyond the frame's median change (a
    change of exposure or gain moves every cell alike and is not motion)."""
    diff = grey - prev
    diff -= float(np.median(diff))
    return (np.abs(diff) > threshold).astype(np.uint8)


def _clear_head(changed: np.ndarray, box: np.ndarray) -> None:
    """Clear the cells of the head around a predicted face box (map cells)."""
    side = max(box[2] - box[0], box[3] - box[1])
    m = HEAD_MARGIN * side
    h, w = changed.shape
    x0, y0 = max(int(box[0] - m), 0), max(int(box[1] - m), 0)
    x1, y1 = min(int(np.ceil(box[2] + m)), w), min(int(np.ceil(box[3] + m)), h)
    if x1 > x0 and y1 > y0:
        changed[y0:y1, x0:x1] = 0


def _flag_tiles(changed: np.ndarray, regions: Sequence, scale: float, min_cells: int) -> np.ndarray:
    """One flag per patch of at least ``min_cells`` changed cells: the smallest region holding the
    patch whole, nearest the patch's centre (the region overlapping it most when none holds it)."""
    flags = np.zeros(len(regions), bool)
    if not len(regions):
        return flags
    count, _, stats, centres = cv2.connectedComponentsWithStats(changed, connectivity=8)
    x0 = np.array([r.x for r in regions], np.float64)
    y0 = np.array([r.y for r in regions], np.float64)
    size = np.array([r.size for r in regions], np.float64)
    for (px, py, pw, ph, cells), centre in zip(stats[1:], centres[1:]):
        if cells < min_cells:
            continue
        left, top, right, bottom = px * scale, py * scale, (px + pw) * scale, (py + ph) * scale
        holds = (x0 <= left) & (y0 <= top) & (x0 + size >= right) & (y0 + size >= bottom)
        cx, cy = centre * scale
        off = np.hypot(x0 + size / 2 - cx, y0 + size / 2 - cy)
        if holds.any():
            flags[int(np.lexsort((off, size, ~holds))[0])] = True
        else:
            overlap = (np.clip(np.minimum(x0 + size, right) - np.maximum(x0, left), 0, None)
                       * np.clip(np.minimum(y0 + size, bottom) - np.maximum(y0, top), 0, None))
            flags[int(np.argmax(overlap))] = True
    return flags
