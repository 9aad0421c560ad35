"""Raspberry Pi camera through picamera2: a main stream for crops and a lores stream for the detector.

picamera2 exists only on Raspberry Pi OS (Debian package python3-picamera2); elsewhere the
backend reports why it is unavailable. One video configuration carries both streams (RGB888
lores needs the Pi 5's PiSP; a Pi 4 needs lores_format = "YUV420"). Every frame comes from one
``capture_request``: both arrays (copies) and the metadata are read from that same request,
which is released in a ``finally`` whatever happens. ``capture_request`` waits at most a few
frame intervals, so a camera that stalls without raising becomes a CaptureError, and the
:class:`~appliance.capture.stall.StallDetector` lets the watchdog see the stall as it happens.
Calls relied on: docs/hardware.md; tests: tests/fakes/picamera2.py.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Literal

import cv2
import numpy as np
from pydantic import Field

from ..errors import CaptureError
from .base import CaptureSettings, Frame
from .stall import StallDetector

KEY = "picamera2"
RECONNECTS = True  # a live camera: lost, it is reopened with backoff (capture/reconnect.py)
CABLE_FIX = "check the ribbon cable and `rpicam-hello --list-cameras`; the unit will restart the camera"


class Settings(CaptureSettings):
    """[capture] backend = "picamera2": the Pi camera, a main stream for crops and a lores one for the detector."""

    backend: Literal[KEY] = KEY
    camera_num: int = Field(0, ge=0, le=7)
    main_size: list[int] = Field([1920, 1080], min_length=2, max_length=2, description="crops come from here")
    lores: bool = Field(True, description="a second, smaller stream for the detector (false: detect on main)")
    lores_size: list[int] = Field([640, 360], min_length=2, max_length=2, description="the detector sees this")
    lores_format: Literal["RGB888", "YUV420"] = Field("RGB888", description="RGB888 needs a Pi 5")
    fps: float = Field(30.0, ge=1.0, le=120.0)
    stall_frames: int = Field(15, ge=2, le=600, description="no frame within this many intervals is a stall")
    first_frame_s: float = Field(5.0, ge=0.5, le=60.0, description="start-up allowance for the first frame")


def probe() -> str | None:
    """None when picamera2 imports, else why not."""
    try:
        import picamera2  # noqa: F401, PLC0415
    except ImportError:
        return "picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2)"
    return None


def frame_rate(fps: float) -> dict:
    """The libcamera control that fixes the frame rate: FrameDurationLimits (min, max) in microseconds
    (a control every libcamera camera advertises, unlike picamera2-version-dependent shorthands)."""
    duration = round(1_000_000 / fps)
    return {"FrameDurationLimits": (duration, duration)}


def _bgr(array: np.ndarray, fmt: str) -> np.ndarray:
    """picamera2's RGB888 is already B, G, R in memory; YUV420 (I420) is converted."""
    return cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420) if fmt == "YUV420" else array


class PiCamera:
    """The Pi camera as a frame source yielding main + lores frames with the sensor timestamp."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.camera_id = settings, settings.camera_id
        self.live = True
        self.stall = StallDetector(settings.fps, settings.stall_frames, settings.first_frame_s)
        self._stop = threading.Event()
        self._cam = None
        self._timed_out = False
        self._last_t = 0.0

    def __enter__(self) -> "PiCamera":
        from picamera2 import Picamera2  # noqa: PLC0415 - device-only SDK

        s = self.settings
        try:
            self._cam = Picamera2(s.camera_num)
        except (RuntimeError, IndexError) as exc:
            raise CaptureError(f"cannot open Pi camera {s.camera_num}: {exc or 'no camera found'}", fix=CABLE_FIX) from None
        try:
            lores = {"size": tuple(s.lores_size), "format": s.lores_format} if s.lores else None
            self._cam.configure(self._cam.create_video_configuration(
                main={"size": tuple(s.main_size), "format": "RGB888"}, lores=lores, controls=frame_rate(s.fps)))
            self._cam.start()
        except RuntimeError as exc:
            self._close()  # release a camera that opened but did not start, for the next attempt
            raise CaptureError(f"cannot start the Pi camera: {exc}", fix=self._start_fix(str(exc))) from None
        self.stall.reset()
        return self

    @staticmethod
    def _start_fix(reason: str) -> str:
        if "lores stream must be YUV" in reason:
            return 'this is not a Pi 5: set [capture] lores_format = "YUV420"'
        if "exceed main" in reason:
            return "make [capture] lores_size no larger than main_size"
        return CABLE_FIX

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            if self._timed_out:  # a timed-out capture job stays queued: cancel it so no request is taken later
                cam.cancel_all_and_flush()
            cam.stop()
        finally:
            cam.close()

    def stop(self) -> None:
        """End the stream at the next frame (from another thread or a signal handler)."""
        self._stop.set()

    def frames(self) -> Iterator[Frame]:
        """Yield frames until stopped; CaptureError when the camera fails or stalls."""
        seq = 0
        while not self._stop.is_set():
            main, lores, metadata = self._capture()
            self.stall.beat()
            scale = main.shape[1] / lores.shape[1] if lores is not None else 1.0
            yield Frame(seq, self._timestamp(metadata), main, self.camera_id, lores=lores, lores_scale=scale,
                        sensor_ts_ns=metadata.get("SensorTimestamp"))
            seq += 1

    def _capture(self) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """Both arrays and the metadata of one request; the request is always released."""
        request = self._next_request()
        try:
            main = request.make_array("main")
            lores = _bgr(request.make_array("lores"), self.settings.lores_format) if self.settings.lores else None
            metadata = request.get_metadata()
        except (RuntimeError, ValueError) as exc:
            raise CaptureError(f"the Pi camera gave an unusable frame: {exc}", fix=CABLE_FIX) from None
        finally:
            request.release()
        return main, lores, metadata

    def _next_request(self):
        timeout = self.stall.timeout_s()
        try:
            return self._cam.capture_request(wait=timeout)
        except TimeoutError:
            self._timed_out = True
            raise CaptureError(f"the Pi camera stalled: no frame within {timeout:.2f} s "
                               f"({self.settings.stall_frames} frame intervals)", fix=CABLE_FIX) from None
        except RuntimeError as exc:
            raise CaptureError(f"the Pi camera stopped delivering frames: {exc}", fix=CABLE_FIX) from None

    def _timestamp(self, metadata: dict) -> float:
        """The sensor timestamp on the monotonic clock (as picamera2 itself compares it), else arrival."""
        now = time.monotonic()
        sensor = metadata.get("SensorTimestamp")
        t = sensor / 1e9 if isinstance(sensor, int) and 0 <= now - sensor / 1e9 <= 5.0 else now
        self._last_t = t = max(t, self._last_t + 1e-6)
        return t


def open_source(settings: Settings) -> PiCamera:
    """Open the Pi camera."""
    return PiCamera(settings)
