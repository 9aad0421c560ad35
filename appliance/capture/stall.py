"""Stall detection for live cameras: no frame within N frame intervals means the camera stalled.

A camera can stop delivering without raising (libcamera "frontend timeout", a loose ribbon
cable). The capture backend beats the detector on every frame; the watchdog (and the unit's
status) read :meth:`StallDetector.snapshot` from another thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class StallState:
    """What the watchdog reads: how long since the last frame, and whether that is a stall."""

    frames: int
    last_frame_age_s: float
    limit_s: float
    stalled: bool


class StallDetector:
    """Tracks the time of the last frame; stalled when none came within ``frames`` intervals."""

    def __init__(self, fps: float, frames: int, first_frame_s: float) -> None:
        self.limit_s = frames / fps
        self.first_frame_s = max(first_frame_s, self.limit_s)
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._frames = 0

    def reset(self, now: float | None = None) -> None:
        """The camera (re)started: the first frame may take ``first_frame_s``."""
        with self._lock:
            self._last, self._frames = time.monotonic() if now is None else now, 0

    def beat(self, now: float | None = None) -> None:
        """A frame arrived."""
        with self._lock:
            self._last = time.monotonic() if now is None else now
            self._frames += 1

    def timeout_s(self) -> float:
        """How long the next wait for a frame may last before it is a stall."""
        with self._lock:
            return self.limit_s if self._frames else self.first_frame_s

    def snapshot(self, now: float | None = None) -> StallState:
        """The current state (safe to call from any thread)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            age, frames = now - self._last, self._frames
        limit = self.limit_s if frames else self.first_frame_s
        return StallState(frames, round(age, 3), round(limit, 3), age > limit)
