"""Where an alert goes once decided: one durable commit, then the registered alert sinks.

The durable commit runs on the finish thread, in line, before anything else sees the
alert: the alert's audit entry (``alert``, or ``repeat_sighting`` for a repeat sighting)
and (with MQTT) its signed outbox row are committed in one SQLite transaction, or neither
(:meth:`AuditLog.append` with ``also=``). If it cannot be committed an AuditError stops
matching (fail closed). Its time is measured and a commit slower than ``slow_ms`` is counted
(``alerts_commit_slow``): a slow disk shows up in the status, never silently.

Every other sink (stdout JSON lines, a test's collector, ...) is registered by name and
runs on the ``sinks`` thread behind a bounded queue, so a slow or stuck sink never
stalls matching; when the queue is full the alert is not handed to the non-durable
sinks and ``alerts_sink_dropped`` counts it (the alert itself is already durable).
A sink that raises is a fault of the ``sinks`` stage (supervised: audited, fatal).
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from typing import Callable

from .audit.log import AuditLog
from .audit.sink import alert_event, alert_payload
from .pipeline.alert import Alert
from .pipeline.supervisor import Supervisor

AlertSink = Callable[[Alert], None]
QUEUE_SIZE = 256
SLOW_COMMIT_MS = 250.0
_STOP = object()


def stdout_sink(alert: Alert) -> None:
    """Print an alert as one JSON line (no image bytes)."""
    print(json.dumps(alert.summary(), sort_keys=True), flush=True)


class DurableCommit:
    """The audit entry and the outbox row of an alert, in one transaction."""

    def __init__(self, audit: AuditLog, publisher=None) -> None:
        self.audit = audit
        self.publisher = publisher

    def __call__(self, alert: Alert) -> None:
        """Commit the alert (raises AuditError when it cannot be committed: fail closed)."""
        also: list = []
        if self.publisher is not None:
            _, also = self.publisher.outbox_statements(alert)
        self.audit.append(alert_event(alert), alert_payload(alert), also=also)
        if self.publisher is not None:
            self.publisher.wake()


class AlertSinks:
    """The unit's alert sinks: the durable commit in line, the named sinks on their own thread."""

    def __init__(self, commit: AlertSink | None, supervisor: Supervisor, queue_size: int | None = None,
                 slow_ms: float = SLOW_COMMIT_MS) -> None:
        self.commit = commit
        self.supervisor = supervisor
        self.slow_ms = slow_ms
        self.counters: Counter[str] = Counter()
        self._sinks: dict[str, AlertSink] = {}
        self._queue: queue.Queue = queue.Queue(queue_size or QUEUE_SIZE)
        self._thread: threading.Thread | None = None

    def register(self, name: str, sink: AlertSink) -> None:
        """Add a non-durable sink, called on the sinks thread for every committed alert."""
        if name in self._sinks:
            raise ValueError(f"alert sink {name!r} is registered already")
        self._sinks[name] = sink

    def names(self) -> list[str]:
        """The registered sinks, in call order."""
        return list(self._sinks)

    def __call__(self, alert: Alert) -> None:
        """The runner's deliver step: commit durably, then queue for the other sinks."""
        if self.commit is not None:
            start = time.perf_counter()
            self.commit(alert)
            if (time.perf_counter() - start) * 1000 > self.slow_ms:
                self.counters["alerts_commit_slow"] += 1
        if not self._sinks:
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.counters["alerts_sink_dropped"] += 1

    def __enter__(self) -> "AlertSinks":
        self._thread = threading.Thread(target=self._run, name="sinks", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 2.0) -> None:
        """Let the queued alerts reach the sinks (a stuck sink is given ``timeout``), then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the thread died of a fault (already recorded): nothing drains it
            pass
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        with self.supervisor.guard("sinks"):
            while (alert := self._queue.get()) is not _STOP:
                for sink in self._sinks.values():
                    sink(alert)
