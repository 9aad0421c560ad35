"""Match: exact cosine top-1 of probe embeddings against the in-memory watchlist matrix.

A plain fp32 scan of 100,000 rows reads 73 MB per probe and is bound by memory
bandwidth. So the rows are also held as int8 codes (one scale for the whole
matrix, a quarter of the bytes) and screened with NumKong's SIMD int8 dot
products. The screen's error is bounded (see :class:`Int8Screen`), so every row
whose true score could reach the best screened one is rescored in fp32: the
answer is the fp32 top-1 by construction, not by the odds of a shortlist.

Both copies live in numpy buffers this module owns, so :meth:`Watchlist.purge`
can overwrite every byte of them (G3).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numkong
import numpy as np

from ..errors import WatchlistError

_CHUNK_ROWS = 4096
# float32 rounding of the screened scores and of the bound itself is below 1e-6
_BOUND_SLACK = 1e-5
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one small pool per process, made on first use
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=7, thread_name_prefix="match")
    return _POOL


def _quantise(rows: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """round(rows / scale) as int8 (scale broadcasts per row or is one number)."""
    return np.rint(rows / scale).astype(np.int8)


@dataclass
class Int8Screen:
    """The rows as int8 codes, ``row ~= scale * code``, with what bounds the error.

    For a probe q quantised the same way (``q ~= s_q * Q``), the screened score
    ``s_q * scale * (Q . code)`` differs from the exact ``q . row`` by at most
    ``|q - s_q Q| * norm_max + |s_q Q| * residual_max`` (Cauchy-Schwarz on each
    of the two quantisation errors).
    """

    codes: np.ndarray
    scale: float
    residual_max: float
    norm_max: float

    @classmethod
    def of(cls, matrix: np.ndarray) -> "Int8Screen":
        """Quantise ``matrix`` in chunks, wiping each float temporary it makes."""
        peak = float(np.abs(matrix).max()) if matrix.size else 0.0
        scale = peak / 127.0 if peak > 0 else 1.0
        codes = np.empty(matrix.shape, np.int8)
        residual_max = norm_max = 0.0
        work = np.empty((min(_CHUNK_ROWS, len(matrix)), matrix.shape[1]), np.float32)
        for start in range(0, len(matrix), _CHUNK_ROWS):
            rows = matrix[start:start + _CHUNK_ROWS]
            tmp = work[:len(rows)]
            np.divide(rows, scale, out=tmp)
            np.rint(tmp, out=tmp)
            codes[start:start + len(rows)] = tmp
            np.multiply(tmp, scale, out=tmp)
            np.subtract(rows, tmp, out=tmp)
            residual_max = max(residual_max, float(np.linalg.norm(tmp, axis=1).max()))
            norm_max = max(norm_max, float(np.linalg.norm(rows, axis=1).max()))
        work.fill(0.0)
        return cls(codes, scale, residual_max, norm_max)

    def scores(self, probes: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Screened scores, shape (rows, probes), and each probe's error bound."""
        dots, unit, bound = self._screen(probes, threads)
        return dots * unit[None, :], bound

    def candidates(self, probes: np.ndarray, threads: int) -> list[np.ndarray]:
        """For each probe, the rows whose exact score could be the best one.

        A row left out screens below ``best - 2 * bound``, so its exact score is
        below ``best - bound``, which is at most the screened best row's exact score.
        """
        dots, unit, bound = self._screen(probes, threads)
        margin = 2 * bound / unit  # in the integer units of the dot products
        return [np.flatnonzero(column >= column.max() - margin[i]) for i, column in enumerate(dots.T)]

    def _screen(self, probes: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer dot products (rows, probes), the score of one integer unit per probe, and the bounds."""
        peak = np.abs(probes).max(axis=1)
        probe_scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q = _quantise(probes, probe_scale[:, None])
        dequantised = q * probe_scale[:, None]
        bound = (np.linalg.norm(probes - dequantised, axis=1) * self.norm_max
                 + np.linalg.norm(dequantised, axis=1) * self.residual_max + _BOUND_SLACK)
        dots = np.empty((len(self.codes), len(probes)), np.float32)
        self._dots(q, dots, threads)
        return dots, probe_scale * np.float32(self.scale), bound

    def _dots(self, q: np.ndarray, out: np.ndarray, threads: int) -> None:
        """``out = codes @ q.T`` as exact integers, split by rows over ``threads`` threads."""
        edges = np.linspace(0, len(self.codes), max(1, min(threads, 8, len(self.codes))) + 1).astype(int)
        parts = list(zip(edges[:-1], edges[1:]))
        futures = [_pool().submit(numkong.cdist, self.codes[a:b], q, metric="dot", dtype="int8", out=out[a:b])
                   for a, b in parts[1:]]
        a, b = parts[0]
        numkong.cdist(self.codes[a:b], q, metric="dot", dtype="int8", out=out[a:b])
        for future in futures:
            future.result()

    def wipe(self) -> None:
        """Overwrite the codes in place."""
        self.codes.fill(0)


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
    threshold: float | None = None  # the deployment's threshold for this list (appliance.thresholds)
    screen: Int8Screen = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.subject_refs):
            raise WatchlistError("watchlist matrix does not match its entry count",
                                 fix="rebuild the bundle with `appliance watchlist build`")
        if len(set(self.subject_refs)) != len(self.subject_refs):
            raise WatchlistError("watchlist has duplicate subject refs",
                                 fix="give every entry a unique subject ref and rebuild")
        self.screen = Int8Screen.of(self.matrix)

    def __len__(self) -> int:
        return len(self.subject_refs)

    def top1(self, probes: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Best row index and exact fp32 cosine score for each L2-normalised probe row."""
        if len(self) == 0 or probes.shape[0] == 0:
            return np.zeros(probes.shape[0], np.int64), np.full(probes.shape[0], -1.0, np.float32)
        probes = np.ascontiguousarray(probes, dtype=np.float32)
        best = np.empty(len(probes), np.int64)
        score = np.empty(len(probes), np.float32)
        for i, candidates in enumerate(self.screen.candidates(probes, threads)):
            exact = self.matrix[candidates] @ probes[i]
            pick = int(exact.argmax())
            best[i], score[i] = candidates[pick], exact[pick]
        return best, score

    def purge(self) -> None:
        """Overwrite the matrix, its int8 codes and the thumbnails in place, then drop every reference."""
        self.matrix.fill(0.0)
        self.screen.wipe()
        for entry in self.entries:
            thumb = entry.get("thumbnail")
            if isinstance(thumb, bytearray):
                thumb[:] = b"\x00" * len(thumb)
        self.matrix = np.zeros((0, self.matrix.shape[1]), np.float32)
        self.screen = Int8Screen.of(self.matrix)
        self.subject_refs = []
        self.entries = []
