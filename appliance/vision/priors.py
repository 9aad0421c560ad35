"""Cheap priors for the search plan: where a new face is more likely to be, per discovery tile.

Each returns a boost in [0, 1] per tile; the plan ages a boosted tile up to twice as fast,
so it is searched sooner, while an unboosted tile still ages and is never starved.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

MOTION_CELL_PX = 16  # the differencing runs on a frame this many times smaller
MOTION_LEVEL = 12  # grey levels: a smaller change is sensor noise
MOTION_FULL = 0.05  # the share of a tile moving that gives it the full boost


class MotionPrior:
    """Low-resolution frame differencing: tiles where the picture changed are searched sooner."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def boost(self, frame: np.ndarray, tiles: Sequence) -> np.ndarray | None:
        """Boost per tile from the change since the previous frame (None on the first frame)."""
        h, w = frame.shape[:2]
        small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
                           (max(1, w // MOTION_CELL_PX), max(1, h // MOTION_CELL_PX)), interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            return None
        moving = (cv2.absdiff(small, previous) > MOTION_LEVEL).astype(np.float64)
        summed = cv2.integral(moving)
        return np.array([_share(summed, t, MOTION_CELL_PX) for t in tiles]) / MOTION_FULL


def _share(summed: np.ndarray, tile, cell: int) -> float:
    """The share of ``tile`` (frame pixels) that moved, from the integral image of the moving mask."""
    rows, cols = summed.shape[0] - 1, summed.shape[1] - 1
    x0, y0 = min(cols, tile.x // cell), min(rows, tile.y // cell)
    x1, y1 = min(cols, -(-(tile.x + tile.size) // cell)), min(rows, -(-(tile.y + tile.size) // cell))
    area = max(1, (x1 - x0) * (y1 - y0))
    return float(summed[y1, x1] - summed[y0, x1] - summed[y1, x0] + summed[y0, x0]) / area


def entry_boost(tiles: Sequence, width: int, height: int) -> np.ndarray:
    """Full boost for tiles on the frame's edges, where walkers come into view (not the whole frame)."""
    def on_edge(t) -> bool:
        whole = t.size >= max(width, height)
        return not whole and (t.x == 0 or t.y == 0 or t.x + t.size >= width or t.y + t.size >= height)
    return np.array([1.0 if on_edge(t) else 0.0 for t in tiles])


def combined(*boosts: np.ndarray | None) -> np.ndarray | None:
    """The largest boost per tile of the priors that gave one, clipped to [0, 1]."""
    given = [b for b in boosts if b is not None]
    return np.clip(np.max(given, axis=0), 0.0, 1.0) if given else None
