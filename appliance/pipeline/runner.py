"""The runner: capture, analyse and finish threads joined by bounded queues, supervised.

The capture thread feeds a latest-frame-wins queue; the analyse thread detects,
gates, aligns and tracks (``FrameProcessor.analyse``); the calling thread embeds,
matches and decides (``FrameProcessor.finish``) and hands each alert to ``deliver``.
The two inference stages overlap, one frame apart, on the two cores; one analysed
frame waits between them.

Where data about faces lives: an analysed frame (``Analysed``) carries the faces chosen
for embedding across the analyse -> finish hand-over, one frame at a time; it is dropped
when ``finish`` returns, so nothing about a face that did not match outlives its frame.

Under overload the newest frame wins and every dropped frame is counted (a live
camera or a paced replay); an unpaced replay (``source.live`` False) waits instead,
so every frame of the file is processed. SIGINT and SIGTERM stop capture, drain
the processing thread and return the final counters.

Supervision (:mod:`appliance.pipeline.supervisor`): anything a thread raises is a
fault: audited, in the status, and the run's error, so ``appliance run`` exits
non-zero. An AuditError from ``deliver`` (the audit log could not commit the alert)
stops matching at once (fail closed).
"""
from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..capture.base import FrameSource
from ..errors import ApplianceError
from .alert import Alert
from .frame import FrameProcessor
from .supervisor import Supervisor

log = logging.getLogger(__name__)

AlertSink = Callable[[Alert], None]
EventSink = Callable[[str, dict], None]
RATE_WINDOW_S = 5.0


class LatestFrameQueue:
    """A bounded queue where a put on a full queue drops the oldest frame (counted)."""

    def __init__(self, maxsize: int) -> None:
        self._q: queue.Queue = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, item: object, block: bool = False, stop: threading.Event | None = None) -> None:
        """Enqueue; if full, drop the oldest item (or wait, with ``block``, for an unpaced replay,
        until there is room or ``stop`` is set)."""
        while block:
            try:
                self._q.put(item, timeout=0.5)
                return
            except queue.Full:
                if stop is not None and stop.is_set():
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
    """What a run did: counters, alerts (alarms), repeat sightings and the error that stopped it
    (None: source ended or signal)."""

    counters: Counter = field(default_factory=Counter)
    alerts: list[Alert] = field(default_factory=list)
    repeat_sightings: list[Alert] = field(default_factory=list)
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
    """Runs a frame source through a FrameProcessor until the source ends, a signal arrives or a fault."""

    def __init__(self, processor: FrameProcessor, source: FrameSource, queue_size: int,
                 deliver: AlertSink | None = None, events: EventSink | None = None,
                 counters_every_s: float = 60.0, supervisor: Supervisor | None = None) -> None:
        self.processor = processor
        self.source = source
        self.frames = LatestFrameQueue(queue_size)
        self.analysed: queue.Queue = queue.Queue(ANALYSED_QUEUE)
        self.deliver = deliver or (lambda alert: None)
        self.events = events or (lambda kind, payload: None)
        self.counters_every_s = counters_every_s
        self.supervisor = supervisor or Supervisor(self.events)
        self.supervisor.on_fatal(self.stop)
        self.stop_event = threading.Event()
        self.result = RunResult()
        self.last_frame_mono: float | None = None
        self._finished: deque[float] = deque()

    def stop(self, *_: object) -> None:
        """Stop capture and processing (safe from a signal handler)."""
        self.stop_event.set()
        self.source.stop()

    def run(self, install_signals: bool = True) -> RunResult:
        """Run to completion and return the result."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop)
            signal.signal(signal.SIGTERM, self.stop)
        with self.supervisor.guard("capture"), self.source:
            threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                       threading.Thread(target=self._analyse, name="analyse", daemon=True)]
            for thread in threads:
                thread.start()
            with self.supervisor.guard("finish"):
                self._process()
            self.stop()
            for thread in threads:
                thread.join(timeout=5)
        self._finish()
        return self.result

    def _capture(self) -> None:
        try:
            with self.supervisor.guard("capture"):
                for frame in self.source.frames():
                    self.frames.put(frame, block=not self.source.live, stop=self.stop_event)
                    if self.stop_event.is_set():
                        break
        finally:
            # waits for room (the last frame is not dropped), but not once the run is stopping:
            # a dead analyse thread must not leave the capture thread blocked for ever
            self.frames.put(_END, block=True, stop=self.stop_event)

    def _items(self, get: Callable[[float], object]) -> Iterator[object]:
        """Items from a queue until its end marker, a fault, or a stop while it is idle."""
        while True:
            try:
                item = get(0.5)
            except queue.Empty:
                if self.stop_event.is_set():
                    return
                continue
            if item is _END or self.supervisor.error:
                return
            yield item

    def _analyse(self) -> None:
        try:
            with self.supervisor.guard("analyse"):
                for frame in self._items(self.frames.get):
                    if self.result.first_capture_mono is None:
                        self.result.first_capture_mono = frame.t_mono
                    self._put_analysed(self.processor.analyse(frame))
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
            for alert in self.processor.finish(item):
                self._emit(alert)
            self._frame_done()
            if time.monotonic() - last_counters >= self.counters_every_s:
                self.events("counters", self.counters())
                last_counters = time.monotonic()

    def _frame_done(self) -> None:
        now = time.monotonic()
        self.result.last_finish_mono = self.last_frame_mono = now
        self._finished.append(now)
        while self._finished and now - self._finished[0] > RATE_WINDOW_S:
            self._finished.popleft()

    def _emit(self, alert: Alert) -> None:
        self.deliver(alert)  # the first step commits the audit entry: an AuditError stops here
        if alert.kind == "repeat_sighting":
            self.result.repeat_sightings.append(alert)
            return
        self.result.alerts.append(alert)
        self.result.latencies_ms.append((time.monotonic() - alert.capture_t_mono) * 1000)

    def frames_per_s(self) -> float:
        """Frames finished per second over the last RATE_WINDOW_S seconds up to now (0 when none:
        a stalled camera reads 0, not the rate it had before it stalled)."""
        recent = [t for t in list(self._finished) if time.monotonic() - t <= RATE_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def counters(self) -> dict:
        """Current counters, including frames dropped by the queue."""
        data = dict(self.processor.counters)
        data["frames_dropped"] = self.frames.dropped
        return data

    def _finish(self) -> None:
        self.result.counters = Counter(self.counters())
        self.result.error = self.supervisor.error
        with self.supervisor.guard("finish"):
            self.events("counters", self.counters())
