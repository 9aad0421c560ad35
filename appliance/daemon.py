"""`appliance run` as systemd runs it: hardening, journald, readiness, the frame watchdog, retention.

:func:`serve` wraps :class:`appliance.unit.Unit`: core dumps off and faulthandler on before
anything is loaded; logs to journald under systemd; READY=1 at the first processed frame,
WATCHDOG=1 only while frames flow, STATUS= from ``Unit.status()`` (appliance/notify.py); the
alert-image retention sweep (appliance/retention.py) while the unit runs, and its shutdown
pass at a clean stop. Outside systemd the notifications are no-ops and the rest still applies.
"""
from __future__ import annotations

import faulthandler
import logging
import sys
from typing import Callable

from .config import Config
from .hardening import disable_core_dumps
from .logs import configure_logging
from .notify import Notifier, start_watchdog, status_line
from .pipeline.runner import RunResult
from .retention import AlertImageRetention

log = logging.getLogger(__name__)

STALL_AFTER_S = 10.0  # below half of the unit's WatchdogSec (30 s)


def _stderr_with_fd():
    """sys.stderr when it is a real file (faulthandler writes to a descriptor), else the process's own."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
        return sys.__stderr__


def harden_process() -> None:
    """No core dumps (they would hold frames), every thread's stack on SIGABRT (the watchdog's signal)."""
    state = disable_core_dumps()
    faulthandler.enable(file=_stderr_with_fd(), all_threads=True)
    log.debug("core dumps off: RLIMIT_CORE %s, dumpable %s", state.rlimit_core, state.dumpable)


def retention_for(unit) -> AlertImageRetention | None:
    """The unit's alert-image retention over its outbox (None without MQTT: no images are kept)."""
    if unit.publisher is None:
        return None
    return AlertImageRetention(unit.publisher.outbox, unit.audit.append,
                               alert_images_hours=unit.cfg.retention.alert_images_hours,
                               resend_window_s=unit.publisher.resend_window_s)


def _last_frame(unit) -> Callable[[], float | None]:
    return lambda: unit.runner.last_frame_mono if unit.runner is not None else None


def serve(cfg: Config, sinks: dict[str, Callable] | None = None, source=None, notifier: Notifier | None = None,
          stall_after_s: float = STALL_AFTER_S, harden: bool = True, **parts) -> RunResult:
    """Open the unit, run it under systemd's eyes until it stops, close it; return the result.

    ``harden=False`` only for tests running it inside the test process (the core limit cannot
    be raised again once lowered).
    """
    from .unit import Unit  # noqa: PLC0415

    if harden:
        harden_process()
    configure_logging(logging.getLogger().level or logging.WARNING, cfg.unit.id)
    notifier = notifier or Notifier()
    with Unit.open(cfg, **parts) as unit:
        for name, sink in (sinks or {}).items():
            unit.sinks.register(name, sink)
        retention = retention_for(unit)
        if retention is not None:
            retention.start(cfg.retention.sweep_every_s)
        dog = start_watchdog(notifier, _last_frame(unit), unit.status, stall_after_s)
        try:
            result = unit.run(source=source)
        finally:
            if dog is not None:
                dog.stop()
            notifier.stopping(status_line(unit.status()))
            if retention is not None:
                retention.stop()
                retention.shutdown()
    return result
