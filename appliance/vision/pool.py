"""Detector windows over a small pool of threads, each thread with its own copy of the nets.

LiteRT and ONNX Runtime release the GIL while they run, and OpenCV while it resizes,
so two workers use both cores. An interpreter runs one call at a time, hence a copy
per worker rather than one shared model. Measured on the 2-core dev machine
(BlazeFace full range, 192 px, ms per window): LiteRT 2.0 one thread, 1.2 over two
workers, 2.1 batched 4 per invoke, 2.3 batched 8; ONNX Runtime 1.8 and 0.9 over two
workers. Batching does not pay on this CPU; the pool does.
"""
from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

Slot = TypeVar("Slot")  # what one worker owns: its copies of the nets
Job = TypeVar("Job")
Result = TypeVar("Result")


class WindowPool(Generic[Slot]):
    """Runs jobs on as many threads as there are slots; each job gets a slot no other job holds."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = list(slots)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for slot in self.slots:
            self._free.put(slot)
        self._executor = ThreadPoolExecutor(len(self.slots), "detect") if len(self.slots) > 1 else None

    @property
    def workers(self) -> int:
        """How many jobs run at once."""
        return len(self.slots)

    def map(self, run: Callable[[Slot, Job], Result], jobs: Sequence[Job], parallel: bool = True) -> list[Result]:
        """``run(slot, job)`` for every job, results in job order; the first error is raised.
        ``parallel`` False runs them one after another on the calling thread."""
        if self._executor is None or len(jobs) < 2 or not parallel:
            return [self._with_slot(run, job) for job in jobs]
        return list(self._executor.map(lambda job: self._with_slot(run, job), jobs))

    def _with_slot(self, run: Callable[[Slot, Job], Result], job: Job) -> Result:
        slot = self._free.get()
        try:
            return run(slot, job)
        finally:
            self._free.put(slot)

    def close(self) -> None:
        """Stop the threads (running jobs finish first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
