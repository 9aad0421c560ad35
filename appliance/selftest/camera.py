"""Camera: the configured source delivers a frame (or the running service reports frames/s)."""
from __future__ import annotations

import re
import threading

from .. import capture
from .base import CheckResult, SelfTestContext, failed, passed

NAME = "camera"
RATE = re.compile(r"(\d+(?:\.\d+)?) frames/s")


def _from_service(ctx: SelfTestContext, status: str) -> CheckResult:
    """The service holds the camera: judge it by the frames/s in its STATUS= line."""
    rate = RATE.search(status)
    if rate and float(rate.group(1)) > 0:
        return passed(NAME, f"{ctx.service_unit} is running and reports {rate.group(1)} frames/s")
    return failed(NAME, f"{ctx.service_unit} is running but reports no frames: {status or '(no status)'}",
                  f"journalctl -u {ctx.service_unit}; check the camera cable, then "
                  f"`systemctl restart {ctx.service_unit}`")


def first_frame(source, timeout_s: float):
    """The first frame of an opened source within ``timeout_s``, else None (a stalled camera).

    The read runs in a daemon thread: a camera that hangs in its driver cannot hang the test.
    """
    box: dict = {}

    def read() -> None:
        try:
            box["frame"] = next(iter(source.frames()), None)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    reader = threading.Thread(target=read, name="selftest-camera", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if "error" in box:
        raise box["error"]
    return box.get("frame")


def check(ctx: SelfTestContext) -> CheckResult:
    """One frame from [capture] within the timeout; PASS with its size."""
    status = ctx.service_status(ctx.service_unit)
    if status is not None:
        return _from_service(ctx, status)
    cfg = ctx.cfg.capture
    source = capture.open_source(cfg)  # BackendUnavailable -> FAIL with its fix
    with source:
        frame = first_frame(source, ctx.camera_timeout_s)
        source.stop()
    if frame is None:
        return failed(NAME, f"{cfg.backend} gave no frame within {ctx.camera_timeout_s:.0f} s",
                      "check the camera cable and `rpicam-hello --list-cameras` (Pi camera) or the "
                      "[capture] source; then power-cycle the unit")
    height, width = frame.image.shape[:2]
    return passed(NAME, f"{cfg.backend} delivered frame {frame.seq}: {width}x{height}")
