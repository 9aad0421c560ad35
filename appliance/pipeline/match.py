"""Match: cosine top-1 of probe embeddings against the in-memory watchlist matrix."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import WatchlistError


@dataclass
class Watchlist:
    """The decrypted watchlist, in process memory only.

    ``matrix`` rows are L2-normalised embeddings of ``model_id``; ``entries``
    holds per-row metadata (subject_ref, category, thumbnail bytes ...).
    """

    subject_refs: list[str]
    matrix: np.ndarray
    model_id: str
    entries: list[dict] = field(default_factory=list)
    deployment_id: str = ""

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.subject_refs):
            raise WatchlistError("watchlist matrix does not match its entry count",
                                 fix="rebuild the bundle with `appliance watchlist build`")
        if len(set(self.subject_refs)) != len(self.subject_refs):
            raise WatchlistError("watchlist has duplicate subject refs",
                                 fix="give every entry a unique subject ref and rebuild")

    def __len__(self) -> int:
        return len(self.subject_refs)

    def top1(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best row index and cosine score for each L2-normalised probe row."""
        if len(self) == 0 or probes.shape[0] == 0:
            return np.zeros(probes.shape[0], np.int64), np.full(probes.shape[0], -1.0, np.float32)
        scores = probes.astype(np.float32, copy=False) @ self.matrix.T
        best = scores.argmax(axis=1)
        return best, scores[np.arange(len(best)), best]

    def purge(self) -> None:
        """Overwrite the matrix and thumbnails in place, then drop every reference."""
        self.matrix.fill(0.0)
        for entry in self.entries:
            thumb = entry.get("thumbnail")
            if isinstance(thumb, bytearray):
                thumb[:] = b"\x00" * len(thumb)
        self.matrix = np.zeros((0, self.matrix.shape[1]), np.float32)
        self.subject_refs = []
        self.entries = []
