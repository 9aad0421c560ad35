"""Raspberry Pi camera through picamera2 (the seam; runs on the device, tested in hw/).

picamera2 exists only on Raspberry Pi OS (Debian package python3-picamera2).
The backend reports why it is unavailable elsewhere; choosing it there is a
config error raised before the pipeline starts.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Literal

from ..errors import CaptureError
from .base import CaptureSettings, Frame

KEY = "picamera2"


class Settings(CaptureSettings):
    """[capture] backend = "picamera2": the Raspberry Pi camera (libcamera)."""

    backend: Literal[KEY] = KEY


def probe() -> str | None:
    """None when picamera2 imports, else why not."""
    try:
        import picamera2  # noqa: F401, PLC0415
    except ImportError:
        return "picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2)"
    return None


class PiCamera:
    """The Pi camera; each request is released as soon as its array is copied."""

    def __init__(self, camera_id: str, size: tuple[int, int] = (1920, 1080)) -> None:
        self.camera_id, self.size = camera_id, size
        self.live = True
        self._stop = threading.Event()
        self._cam = None

    def __enter__(self) -> "PiCamera":
        from picamera2 import Picamera2  # noqa: PLC0415

        try:
            self._cam = Picamera2()
            config = self._cam.create_video_configuration(main={"size": self.size, "format": "RGB888"})
            self._cam.configure(config)
            self._cam.start()
        except (RuntimeError, IndexError) as exc:
            self.__exit__()  # release a camera that opened but did not start, for the next attempt
            raise CaptureError(f"cannot start the Pi camera: {exc}",
                               fix="check the ribbon cable and `rpicam-hello --list-cameras`") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cam is not None:
            self._cam.stop()
            self._cam.close()
            self._cam = None

    def stop(self) -> None:
        """End the stream at the next frame."""
        self._stop.set()

    def frames(self) -> Iterator[Frame]:
        """Yield frames (RGB888 in picamera2 is BGR byte order, as OpenCV expects)."""
        seq = 0
        while not self._stop.is_set():
            try:
                image = self._cam.capture_array("main")
            except RuntimeError as exc:  # a CaptureError, so the run fails instead of ending cleanly
                raise CaptureError(f"the Pi camera stopped delivering frames: {exc}",
                                   fix="check the ribbon cable; the unit will retry") from None
            yield Frame(seq, time.monotonic(), image, self.camera_id)
            seq += 1


def open_source(cfg: Settings) -> PiCamera:
    """Open the Pi camera."""
    return PiCamera(cfg.camera_id)
