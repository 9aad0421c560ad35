"""1:N match time: Watchlist.top1 against 1k, 10k and 100k entries (target < 5 ms per probe).

The watchlist rows are random unit vectors of the embedder's width (192): the
cost of a cosine top-1 depends on the sizes only, not on the faces.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..pipeline.match import Watchlist

SIZES = (1_000, 10_000, 100_000)
DIM = 192
TARGET_MS = 5.0


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def time_watchlist(size: int, probes: int = 200, batch: int = 5, seed: int = 0) -> dict:
    """Per-probe latency of top1 for single probes and for a frame's batch of ``batch`` faces."""
    rng = np.random.default_rng(seed)
    watchlist = Watchlist([f"s{i}" for i in range(size)], _unit_rows(rng, size), "bench@0")
    queries = _unit_rows(rng, probes)
    watchlist.top1(queries[:2])  # warm the BLAS threads and caches
    single = []
    for q in queries:
        t0 = time.perf_counter()
        watchlist.top1(q[None])
        single.append((time.perf_counter() - t0) * 1e3)
    batched = []
    for i in range(0, probes - batch + 1, batch):
        t0 = time.perf_counter()
        watchlist.top1(queries[i:i + batch])
        batched.append((time.perf_counter() - t0) * 1e3 / batch)
    p50, p99 = np.percentile(single, [50, 99])
    return {"entries": size, "single_probe_ms": {"p50": float(p50), "p99": float(p99)},
            f"per_probe_in_batch_of_{batch}_ms": {"p50": float(np.percentile(batched, 50)),
                                                  "p99": float(np.percentile(batched, 99))},
            "matrix_mb": round(size * DIM * 4 / 2**20, 1), "meets_target": bool(p99 < TARGET_MS)}


def run(out_dir: Path) -> dict:
    """Time 1:N matching at every size; JSON-serialisable result."""
    rows = [time_watchlist(n) for n in SIZES]
    return {"target_ms_per_probe": TARGET_MS, "dim": DIM, "rows": rows,
            "meets_target_at_100k": rows[-1]["meets_target"]}
