"""The runner: capture, analyse and finish threads joined by bounded queues.

The capture thread feeds a latest-frame-wins queue; the analyse thread detects,
gates, aligns and tracks (FrameProcessor.analyse); the calling thread embeds,
matches and decides (FrameProcessor.finish). The two inference stages overlap,
one frame apart, on the two cores; the queue between them holds two frames.

Under overload the newest frame wins and every dropped frame is counted (a
live camera or a paced replay); an unpaced replay (fps = 0, "as fast as
possible") waits instead, so every frame of the file is processed. SIGINT
and SIGTERM stop capture, drain the processing thread and return the final
counters. Alerts go to the alert sinks in order; the first sink is the audit
log once it exists, so an alert leaves only after its audit entry is committed.
If a sink raises AuditError the runner stops matching (fail closed).

Hooks for other subsystems:
- ``alert_sinks``: callables taking an :class:`Alert`, called in order;
- ``events``: a callable ``(event_type, payload)`` for service, counter and fault events;
- ``watchlist``: a callable returning the current Watchlist or None (no matching).
"""
from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..capture.base import FrameSource
from ..errors import ApplianceError, AuditError
from .alert import Alert
from .frame import FrameProcessor

log = logging.getLogger(__name__)

AlertSink = Callable[[Alert], None]
EventSink = Callable[[str, dict], None]


class LatestFrameQueue:
    """A bounded queue where a put on a full queue drops the oldest frame (counted)."""

    def __init__(self, maxsize: int) -> None:
        self._q: queue.Queue = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, item: object, block: bool = False) -> None:
        """Enqueue; if full, drop the oldest item (or wait, with ``block``, for an unpaced replay)."""
        if block:
            self._q.put(item)
            return
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float) -> object:
        """Dequeue; raises queue.Empty after ``timeout`` seconds."""
        return self._q.get(timeout=timeout)


_END = object()
ANALYSED_QUEUE = 1


@dataclass
class RunResult:
    """What a run did: counters and any error that stopped it."""

    counters: Counter = field(default_factory=Counter)
    alerts: list[Alert] = field(default_factory=list)
    error: ApplianceError | None = None
    latencies_ms: list[float] = field(default_factory=list)
    first_capture_mono: float | None = None
    last_finish_mono: float | None = None

    def frames_per_s(self) -> float:
        """Throughput from the first frame's capture to the last frame's decision (no start-up)."""
        if self.first_capture_mono is None or self.last_finish_mono is None:
            return 0.0
        return self.counters["frames"] / max(self.last_finish_mono - self.first_capture_mono, 1e-9)


class Runner:
    """Runs a frame source through a FrameProcessor until the source ends or a signal arrives."""

    def __init__(self, processor: FrameProcessor, source: FrameSource, queue_size: int,
                 alert_sinks: list[AlertSink] | None = None, events: EventSink | None = None,
                 counters_every_s: float = 60.0) -> None:
        self.processor = processor
        self.source = source
        self.frames = LatestFrameQueue(queue_size)
        self.analysed: queue.Queue = queue.Queue(ANALYSED_QUEUE)
        self.alert_sinks = alert_sinks or []
        self.events = events or (lambda kind, payload: None)
        self.counters_every_s = counters_every_s
        self.stop_event = threading.Event()
        self.result = RunResult()

    def stop(self, *_: object) -> None:
        """Stop capture and processing (safe from a signal handler)."""
        self.stop_event.set()
        self.source.stop()

    def run(self, install_signals: bool = True) -> RunResult:
        """Run to completion and return the result."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        with self.source:
            threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                       threading.Thread(target=self._analyse, name="analyse", daemon=True)]
            for thread in threads:
                thread.start()
            self._process()
            self.stop()
            for thread in threads:
                thread.join(timeout=5)
        self._finish()
        return self.result

    def _capture(self) -> None:
        try:
            block = not getattr(self.source, "live", True)
            for frame in self.source.frames():
                self.frames.put(frame, block=block)
                if self.stop_event.is_set():
                    break
        except ApplianceError as exc:
            self.result.error = self.result.error or exc
            self._event("fault", {"kind": "capture", "message": exc.message})
        finally:
            self.frames.put(_END, block=True)

    def _items(self, get: Callable[[float], object]) -> Iterator[object]:
        """Items from a queue until its end marker, an error, or a stop while it is idle."""
        while True:
            try:
                item = get(0.5)
            except queue.Empty:
                if self.stop_event.is_set():
                    return
                continue
            if item is _END or self.result.error:
                return
            yield item

    def _analyse(self) -> None:
        try:
            for frame in self._items(self.frames.get):
                if self.result.first_capture_mono is None:
                    self.result.first_capture_mono = frame.t_mono
                self._put_analysed(self._guarded(self.processor.analyse, frame))
        finally:
            self._put_analysed(_END)

    def _put_analysed(self, item: object) -> None:
        while not self.stop_event.is_set() or item is _END:
            try:
                self.analysed.put(item, timeout=0.5)
                return
            except queue.Full:
                if item is _END:
                    self._drain_one()

    def _drain_one(self) -> None:
        try:
            self.analysed.get_nowait()
        except queue.Empty:
            pass

    def _process(self) -> None:
        last_counters = time.monotonic()
        for item in self._items(lambda timeout: self.analysed.get(timeout=timeout)):
            if item is not None:
                self._handle(item)
            if time.monotonic() - last_counters >= self.counters_every_s:
                self._event("counters", self.counters())
                last_counters = time.monotonic()

    def _guarded(self, stage: Callable, item: object) -> object:
        """Run one stage; a typed error stops the run (recorded, and reported as a fault)."""
        try:
            return stage(item)
        except AuditError as exc:
            self.result.error = self.result.error or exc
            self.stop()
        except ApplianceError as exc:
            self.result.error = self.result.error or exc
            self._event("fault", {"kind": type(exc).__name__, "message": exc.message})
            self.stop()
        return None

    def _handle(self, analysed: object) -> None:
        self._guarded(self._finish_frame, analysed)
        self.result.last_finish_mono = time.monotonic()

    def _finish_frame(self, analysed: object) -> None:
        # an AuditError from the first sink means no audit entry: fail closed, nothing leaves
        for alert in self.processor.finish(analysed):
            self._emit(alert)

    def _event(self, kind: str, payload: dict) -> None:
        """Pass an event to the hook; if the audit log cannot take it, stop matching (fail closed)."""
        try:
            self.events(kind, payload)
        except AuditError as exc:
            self.result.error = self.result.error or exc
            self.stop()

    def _emit(self, alert: Alert) -> None:
        for sink in self.alert_sinks:
            sink(alert)
        self.result.alerts.append(alert)
        self.result.latencies_ms.append((time.monotonic() - alert.capture_t_mono) * 1000)

    def counters(self) -> dict:
        """Current counters, including frames dropped by the queue."""
        data = dict(self.processor.counters)
        data["frames_dropped"] = self.frames.dropped
        return data

    def _finish(self) -> None:
        self.result.counters = Counter(self.counters())
        self._event("counters", self.counters())
