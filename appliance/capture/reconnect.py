"""A camera that comes back: reconnect with backoff when a live source fails or ends.

A live camera (a backend with ``RECONNECTS = True``: USB/RTSP through OpenCV, the Pi camera)
that raises CaptureError, fails to open, or stops yielding frames is reported as lost (the
unit audits a ``camera_lost`` fault and shows state ``camera_lost``), closed, and opened
again from the registry after a backoff (0.5 s doubling to 8 s), until it delivers again or
the run stops. Frames are renumbered so that ``seq`` keeps increasing across reconnects
(the tracker relies on it). Each attempt is time-stamped (``last_attempt_mono``), so the
systemd watchdog can tell a unit that is trying to get its camera back from one that hangs.

A bug in a backend (an exception that is not a CaptureError) is not retried here: it
reaches the runner's supervisor and stops the run (appliance/pipeline/supervisor.py).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Iterator

from ..errors import CaptureError
from .base import Frame, FrameSource

log = logging.getLogger(__name__)

BACKOFF_S, BACKOFF_MAX_S = 0.5, 8.0  # the cap stays under the watchdog's stall threshold (10 s)


class ReconnectingSource:
    """A live FrameSource that reopens its camera after a loss; ``live`` is always True."""

    live = True

    def __init__(self, open_source: Callable[[], FrameSource], on_lost: Callable[[CaptureError], None],
                 on_restored: Callable[[float, int], None] | None = None, backoff_s: float = BACKOFF_S,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self._open = open_source
        self._on_lost = on_lost
        self._on_restored = on_restored or (lambda down_s, attempts: None)
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self._stop = threading.Event()
        self._current: FrameSource | None = None
        self._seq = 0
        self.reconnects = 0
        self.last_attempt_mono: float | None = None

    def __enter__(self) -> "ReconnectingSource":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def stop(self) -> None:
        """End the stream (and any wait for the camera) at once."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.stop()

    def frames(self) -> Iterator[Frame]:
        """Frames from the camera, across losses, until stopped."""
        lost_since: float | None = None
        attempts = 0
        while not self._stop.is_set():
            self.last_attempt_mono = time.monotonic()
            try:
                for frame in self._session():
                    if lost_since is not None:
                        self._on_restored(time.monotonic() - lost_since, attempts)
                        lost_since, attempts = None, 0
                    yield frame
                if self._stop.is_set():
                    return
                error = CaptureError("the camera stopped delivering frames",
                                     fix="check the camera's cable or stream; the unit keeps reconnecting")
            except CaptureError as exc:
                error = exc
            lost_since = lost_since if lost_since is not None else time.monotonic()
            attempts += 1
            self._lost(error, attempts)

    def _session(self) -> Iterator[Frame]:
        """One opening of the camera: its frames, renumbered; closed however it ends."""
        source = self._open()
        self._current = source
        try:
            with source:
                for frame in source.frames():
                    yield dataclasses.replace(frame, seq=self._seq)
                    self._seq += 1
                    if self._stop.is_set():
                        return
        finally:
            self._current = None

    def _lost(self, error: CaptureError, attempts: int) -> None:
        if attempts == 1:  # one audited loss per outage, not one per attempt
            self.reconnects += 1
            self._on_lost(error)
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempts - 1))
        log.warning("camera lost (%s); attempt %d, reconnecting in %.1f s", error.message, attempts, delay)
        self.last_attempt_mono = time.monotonic()
        self._stop.wait(delay)
