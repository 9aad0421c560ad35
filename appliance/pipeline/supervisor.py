"""Supervision: every failure in any of the unit's threads becomes a fault nobody can miss.

A thread runs its body inside :meth:`Supervisor.guard`. What escapes it is turned into:

- a ``fault`` entry in the audit log (kind and a short detail; never data from a frame),
- the unit's state and reason (``status()``, the MQTT status, the systemd STATUS=),
- for a fatal fault, the run's error: matching stops and ``appliance run`` exits non-zero
  (a typed error keeps its documented exit code; anything else is :class:`StageFailed`,
  exit code 12, a bug that systemd restarts the unit for).

An :class:`AuditError` is never audited (the log is what failed): it stops the run at
once (fail closed). Which stages restart instead of stopping the run is decided where
they run: the MQTT outbox pump restarts with backoff (alerts stay durable in the outbox
meanwhile) and escalates to a fatal fault when it keeps failing; the pipeline threads
(capture, analyse, finish, sinks) are fatal at the first fault, because a half-running
pipeline would hide that the van has stopped recognising faces.
"""
from __future__ import annotations

import logging
import threading
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import ApplianceError, AuditError, CaptureError, StageFailed

log = logging.getLogger(__name__)

FaultHook = Callable[[str, dict], None]
FAULT_KINDS_BY_ERROR = {CaptureError: "camera_lost"}


def _where(exc: BaseException) -> str:
    """File:line where ``exc`` was raised (a bug report's anchor; carries no frame data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def as_appliance_error(stage: str, exc: BaseException) -> ApplianceError:
    """The typed error a failure stands for: itself, or StageFailed for an untyped exception."""
    if isinstance(exc, ApplianceError):
        return exc
    return StageFailed(f"the {stage} stage crashed: {type(exc).__name__} at {_where(exc)}",
                       fix="this is a bug: the fault is in the audit log and the journal (with the "
                           "traceback); report it. systemd restarts the unit")


class Supervisor:
    """Collects faults from every thread; the first fatal one becomes the run's error."""

    def __init__(self, audit: FaultHook | None = None) -> None:
        self._audit = audit or (lambda kind, payload: None)
        self._lock = threading.Lock()
        self._stoppers: list[Callable[[], None]] = []
        self.error: ApplianceError | None = None
        self.faults: list[dict] = []

    def on_fatal(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` when a fatal fault arrives (the runner's stop)."""
        self._stoppers.append(stop)

    @contextmanager
    def guard(self, stage: str, fatal: bool = True) -> Iterator[None]:
        """Run a thread's body; whatever escapes it is a fault of ``stage``."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the supervision boundary of one thread
            self.fault(stage, exc, fatal)

    def fault(self, stage: str, exc: BaseException, fatal: bool = True) -> ApplianceError:
        """Record a fault of ``stage`` (audit, state, log); stop the run when ``fatal``."""
        error = as_appliance_error(stage, exc)
        if not isinstance(exc, ApplianceError):
            log.error("%s stage crashed", stage, exc_info=exc)
        record = {"stage": stage, "error": type(error).__name__, "message": error.message,
                  "fatal": fatal or isinstance(error, AuditError)}
        with self._lock:
            self.faults.append(record)
            if record["fatal"] and self.error is None:
                self.error = error
        if not isinstance(error, AuditError):
            self._record(stage, error)
        if record["fatal"]:
            for stop in self._stoppers:
                stop()
        return error

    def _record(self, stage: str, error: ApplianceError) -> None:
        kind = next((k for cls, k in FAULT_KINDS_BY_ERROR.items() if isinstance(error, cls)),
                    "stage_failed" if isinstance(error, StageFailed) else "other")
        try:
            self._audit("fault", {"kind": kind, "message": f"{stage}: {error.message}"})
        except AuditError as exc:  # the fault could not be audited: that stops matching too
            with self._lock:
                if self.error is None:
                    self.error = exc
            for stop in self._stoppers:
                stop()

    def recover(self) -> None:
        """Forget the fatal error (its fault stays recorded and audited): the unit recovered from it
        by other means (an inference fallback) and runs again."""
        with self._lock:
            self.error = None

    def last_fault(self) -> dict | None:
        """The most recent fault, for the status."""
        with self._lock:
            return self.faults[-1] if self.faults else None
