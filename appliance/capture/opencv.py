"""V4L2, USB and RTSP cameras through OpenCV's VideoCapture.

``source`` is a device index ("0"), a device path ("/dev/video0") or a URL
("rtsp://..."). Lost frames end the stream with a CaptureError (the run stops with the camera's exit code
and the fault is audited; systemd restarts the unit).
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Literal

import cv2
from pydantic import Field

from ..errors import CaptureError
from .base import CaptureSettings, Frame

KEY = "opencv"


class Settings(CaptureSettings):
    """[capture] backend = "opencv": a V4L2 device, USB camera or RTSP stream."""

    backend: Literal[KEY] = KEY
    source: str = Field("", description="device index (0), path (/dev/video0) or rtsp:// URL")
    fps: float = Field(0.0, ge=0.0, le=120.0, description="requested frame rate (0: the camera's own)")
MAX_CONSECUTIVE_FAILURES = 25


def probe() -> str | None:
    """OpenCV is always present; whether a device exists is known only when opened."""
    return None


class OpenCVCamera:
    """A live camera; frames are stamped on arrival."""

    def __init__(self, source: str, camera_id: str, fps: float) -> None:
        self.source, self.camera_id, self.fps = source, camera_id, fps
        self.live = True
        self._stop = threading.Event()
        self._cap: cv2.VideoCapture | None = None

    def __enter__(self) -> "OpenCVCamera":
        target: int | str = int(self.source) if self.source.isdigit() else self.source
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise CaptureError(f"cannot open camera {self.source!r}",
                               fix="check the cable/URL, `v4l2-ctl --list-devices`, and [capture] source")
        if self.fps > 0:
            self._cap.set(cv2.CAP_PROP_FPS, self.fps)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cap is not None:
            self._cap.release()

    def stop(self) -> None:
        """End the stream at the next frame."""
        self._stop.set()

    def frames(self) -> Iterator[Frame]:
        """Yield frames until stopped; CaptureError after repeated read failures."""
        seq, failures = 0, 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if not ok or image is None:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise CaptureError(f"camera {self.source!r} stopped delivering frames",
                                       fix="check the camera connection; the unit will retry")
                time.sleep(0.02)
                continue
            failures = 0
            yield Frame(seq, time.monotonic(), image, self.camera_id)
            seq += 1


def open_source(cfg: Settings) -> OpenCVCamera:
    """Open the camera named by [capture] source."""
    if not cfg.source:
        raise CaptureError("[capture] source is empty", fix="set it to 0, /dev/video0 or rtsp://...")
    return OpenCVCamera(cfg.source, cfg.camera_id, cfg.fps)
