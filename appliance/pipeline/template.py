"""Track template: multi-frame evidence for one person passing.

The quality-weighted mean of a track's L2-normalised embeddings, scored against the
watchlist beside the per-frame scores (``[match] evidence = "template"``). It lives
in process memory only, on its track, and is wiped when the track ends or is
re-joined (track.py): it is never logged, written or published.
"""
from __future__ import annotations

import numpy as np

SIZE_FULL_WEIGHT_PX = 80.0  # faces this tall or taller weigh fully on size


def quality_weight(quality: dict) -> float:
    """The weight of one face in its track's template, from the quality gate's figures:
    detector confidence x size (up to SIZE_FULL_WEIGHT_PX) x frontalness (1 - yaw)."""
    det = float(quality.get("det_score", 1.0))
    size = min(1.0, float(quality.get("height_px", SIZE_FULL_WEIGHT_PX)) / SIZE_FULL_WEIGHT_PX)
    frontal = max(0.1, 1.0 - float(quality.get("yaw", 0.0)))
    return max(1e-3, det * size * frontal)


class TrackTemplate:
    """Weighted sum of one track's normalised embeddings (in memory for the track's life)."""

    def __init__(self, dim: int) -> None:
        self.total = np.zeros(dim, np.float32)
        self.frames = 0

    def add(self, embedding: np.ndarray, quality: dict) -> None:
        """Fold in one good face's embedding, weighted by its quality."""
        norm = float(np.linalg.norm(embedding))
        if norm > 0:
            self.total += (quality_weight(quality) / norm) * embedding.astype(np.float32)
            self.frames += 1

    def vector(self) -> np.ndarray:
        """The template as an L2-normalised probe."""
        norm = float(np.linalg.norm(self.total))
        return self.total / norm if norm > 0 else self.total.copy()

    def wipe(self) -> None:
        """Overwrite the sum in place (the track ended)."""
        self.total.fill(0.0)
        self.frames = 0
