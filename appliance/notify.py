"""Telling systemd how the unit is: readiness, the frame watchdog and a one-line status.

``appliance.service`` is ``Type=notify`` with ``WatchdogSec``: systemd starts the unit,
waits for ``READY=1`` and restarts it when ``WATCHDOG=1`` stops arriving. The watchdog is
fed only while frames flow (:class:`FrameWatchdog`), so a camera that stalls without
raising (the Pi camera's libcamera "frontend timeout" after 11-20 hours) stops the pings
and systemd restarts the unit. ``STATUS=`` carries the state and frames/s, shown by
``systemctl status appliance`` and read back by ``appliance selftest``.

Messages go through systemd-python's ``systemd.daemon.notify`` (sd_notify(3)); only when
that package is absent are they written to ``$NOTIFY_SOCKET`` with a plain datagram socket.
Outside systemd (no ``NOTIFY_SOCKET``) nothing is sent.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Mapping

log = logging.getLogger(__name__)

LastFrameAt = Callable[[], "float | None"]
StatusSource = Callable[[], Mapping]
Send = Callable[[str], bool]


def _socket_send(message: str) -> bool:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET ('@' = abstract name)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode("utf-8"), address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
    return True


def default_send() -> tuple[Send, str]:
    """systemd-python's notify when installed, else the plain-socket sender; and its name."""
    try:
        from systemd import daemon  # noqa: PLC0415 - optional (python3-systemd / systemd-python)
    except ImportError:
        return _socket_send, "socket"
    return daemon.notify, "systemd-python"


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec (from $WATCHDOG_USEC), or None when no watchdog is set.

    $WATCHDOG_PID, when present, must name this process (sd_watchdog_enabled(3)).
    """
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def status_line(status: Mapping) -> str:
    """The STATUS= text from :meth:`appliance.unit.Unit.status`: state first, then frames/s,
    the deployment, the watchlist size and what waits in the outbox."""
    parts = [str(status.get("state", "unknown"))]
    if status.get("reason"):
        parts[0] += f" ({status['reason']})"
    if status.get("frames_per_s") is not None:
        parts.append(f"{float(status['frames_per_s']):.1f} frames/s")
    deployment = status.get("deployment") or {}
    if deployment.get("active"):
        parts.append(f"deployment {deployment['deployment']['deployment_id']}")
    if status.get("watchlist_entries") is not None:
        parts.append(f"watchlist {status['watchlist_entries']}")
    pending = (status.get("mqtt") or {}).get("outbox_pending")
    if pending:
        parts.append(f"outbox {pending} pending")
    return ", ".join(parts)[:200]


class Notifier:
    """sd_notify messages for this process; a no-op outside systemd."""

    def __init__(self, send: Send | None = None) -> None:
        self._send, self.transport = (send, "custom") if send else default_send()

    @property
    def active(self) -> bool:
        """True when systemd asked for notifications ($NOTIFY_SOCKET set)."""
        return bool(os.environ.get("NOTIFY_SOCKET"))

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one message; False outside systemd or on failure."""
        if not self.active:
            return False
        return bool(self._send("\n".join(fields)))

    def ready(self, status: str) -> bool:
        """READY=1: camera, backend, deployment state and audit log are up."""
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        """STATUS=<text>: shown by ``systemctl status``."""
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the unit is alive (sent only while frames flow)."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        """STOPPING=1 at a clean shutdown."""
        return self.send("STOPPING=1", f"STATUS={status}")


class FrameWatchdog:
    """Says READY=1 at the first frame, pings systemd's watchdog only while frames flow, and
    keeps STATUS= current.

    ``last_frame_at`` returns the monotonic time of the newest processed frame (None before
    the first); ``status`` returns the Unit's status mapping. The first beat that sees a frame
    sends READY=1: by then camera, backend, deployment state and audit log are all up. A beat
    pings when the newest frame is younger than ``stall_after_s``; otherwise it stays silent,
    so systemd's ``WatchdogSec`` runs out and the unit is restarted.
    """

    def __init__(self, notifier: Notifier, last_frame_at: LastFrameAt, status: StatusSource, *,
                 interval_s: float, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.last_frame_at = last_frame_at
        self.status = status
        self.interval_s = interval_s
        self.stall_after_s = stall_after_s
        self.clock = clock
        self._last_status: str | None = None
        self.ready_sent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    def frames_flowing(self) -> bool:
        """True when the newest frame is younger than ``stall_after_s``."""
        last = self.last_frame_at()
        return last is not None and self.clock() - last < self.stall_after_s

    def beat(self) -> bool:
        """One check: READY=1 at the first frame, STATUS= when it changed, WATCHDOG=1 while frames
        flow; True if pinged."""
        flowing = self.frames_flowing()
        line = status_line(self.status())
        if not flowing and self.ready_sent:
            line = f"no frame for {self.clock() - (self.last_frame_at() or 0):.0f} s; {line}"[:200]
        if flowing and not self.ready_sent:
            self.ready_sent = self.notifier.ready(line) or True
        elif line != self._last_status:
            self.notifier.status(line)
        self._last_status = line
        if not flowing:
            return False
        self.pings += 1
        return self.notifier.watchdog()

    def start(self) -> "FrameWatchdog":
        """Beat every ``interval_s`` in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        """Stop beating (joins the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 2 * self.interval_s))


STATUS_ONLY_INTERVAL_S = 5.0


def start_watchdog(notifier: Notifier, last_frame_at: LastFrameAt, status: StatusSource,
                   stall_after_s: float = 10.0) -> FrameWatchdog | None:
    """Start the frame watchdog under systemd; None outside it ($NOTIFY_SOCKET unset).

    It beats at half of WatchdogSec (every 5 s for STATUS= alone when no watchdog is set),
    and at least twice per ``stall_after_s``, which must stay below WatchdogSec (the unit
    sets 30 s): a newest frame older than that counts as a stall.
    """
    if not notifier.active:
        return None
    interval = watchdog_interval_s() or STATUS_ONLY_INTERVAL_S
    return FrameWatchdog(notifier, last_frame_at, status, interval_s=min(interval, stall_after_s / 2),
                         stall_after_s=stall_after_s).start()
