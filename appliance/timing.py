"""Per-stage timings: a bounded window of recent durations per stage (for status and bench)."""
from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager
from typing import Iterator

import numpy as np

WINDOW = 10_000


class StageTimes:
    """Recent durations in ms per stage name."""

    def __init__(self) -> None:
        self.samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.cpu_samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=WINDOW))  # the thread's CPU ms

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as one sample of stage ``name``."""
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.samples[name].append((time.perf_counter() - start) * 1000)
            self.cpu_samples[name].append((time.thread_time() - cpu) * 1000)

    def recent_ms(self, name: str, n: int = 20, cpu: bool = False) -> float:
        """Mean of the last ``n`` samples of ``name`` (0 when none), wall or (``cpu``) the thread's CPU
        time; safe while another thread adds."""
        samples = (self.cpu_samples if cpu else self.samples).get(name)
        recent = []
        for i in range(1, n + 1):
            try:
                recent.append(samples[-i])  # indexing a deque is atomic; iterating it while it grows is not
            except (IndexError, TypeError):
                break
        return sum(recent) / len(recent) if recent else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """p50/p99/mean ms and count per stage."""
        out = {}
        for name, values in self.samples.items():
            arr = np.asarray(values)
            out[name] = {"p50_ms": round(float(np.percentile(arr, 50)), 2),
                         "p99_ms": round(float(np.percentile(arr, 99)), 2),
                         "mean_ms": round(float(arr.mean()), 2), "n": int(arr.size)}
        return out

    def clear(self) -> None:
        """Forget all samples."""
        self.samples.clear()
