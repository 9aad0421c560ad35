"""A test double of exactly the picamera2 surface appliance/capture/picamera2.py uses.

Picamera2(camera_num), create_video_configuration(main=, lores=, controls=, ...), configure,
start, capture_request(wait=seconds), cancel_all_and_flush, stop, close; and on a request
make_array(name), get_metadata(), release(). The checks are picamera2's own
(raspberrypi/picamera2, picamera2.py / request.py; docs/hardware.md): stream keys and sizes,
lores no larger than main, lores must be YUV on VC4 (Pi 4), RGB888 arrays in B, G, R order,
YUV420 arrays (h*3/2, w), a timed-out capture_request raises TimeoutError and its job stays
queued until cancel_all_and_flush. Every request must be released exactly once and none may be
held when the camera closes; a violation raises ContractViolation and is kept in STATE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STREAM_KEYS = {"format", "size", "stride", "preserve_ar"}
FORMATS = {"RGB888", "BGR888", "XBGR8888", "XRGB8888", "YUV420", "YVU420"}


class ContractViolation(AssertionError):
    """The backend used picamera2 in a way the real one would reject or leak."""


@dataclass
class State:
    """The fake camera and everything done to it."""

    platform: str = "PISP"  # Pi 5; "VC4" for a Pi 4
    cameras: int = 1
    fail_start: str | None = None
    fail_array_at: int | None = None  # the request number whose make_array raises
    stall_after: int | None = None  # requests delivered before the camera stalls
    sensor_step_ns: int = 33_333_333
    calls: list[tuple] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    requests: list["CompletedRequest"] = field(default_factory=list)
    cameras_made: list["Picamera2"] = field(default_factory=list)
    queued_jobs: int = 0

    def violate(self, message: str) -> None:
        self.violations.append(message)
        raise ContractViolation(message)

    def held(self) -> list[int]:
        return [r.number for r in self.requests if not r.released]


STATE = State()


def reset(**kwargs) -> State:
    """A fresh camera for one test."""
    global STATE
    STATE = State(**kwargs)
    return STATE


def _check_stream(stream: dict, name: str) -> dict:
    if set(stream) - STREAM_KEYS:
        raise RuntimeError(f"Bad key(s) {set(stream) - STREAM_KEYS} in {name} stream configuration")
    size, fmt = stream.get("size", (640, 480)), stream.get("format", "XBGR8888")
    if type(size) is not tuple or len(size) != 2 or size[0] % 2 or size[1] % 2:
        raise RuntimeError(f"{name} size must be a tuple of two even integers, got {size!r}")
    if fmt not in FORMATS:
        raise RuntimeError(f"Bad format {fmt!r} in {name} stream")
    return {"size": size, "format": fmt}


class CompletedRequest:
    """One frame's buffers and metadata, owned by the caller until release()."""

    def __init__(self, cam: "Picamera2", number: int) -> None:
        self._cam, self.number, self.released = cam, number, False
        self.sensor_ts = cam.t0 + number * STATE.sensor_step_ns

    def make_array(self, name: str) -> np.ndarray:
        STATE.calls.append(("make_array", self.number, name))
        if self.released:
            STATE.violate(f"make_array on released request {self.number}")
        if STATE.fail_array_at == self.number:
            raise RuntimeError("Failed to map buffer: Bad file descriptor")
        config = self._cam.config.get(name)
        if config is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        (w, h), fmt = config["size"], config["format"]
        if fmt.startswith("YUV"):
            array = np.full((h * 3 // 2, w), 128, np.uint8)
            array[:h] = 100 + self.number % 100  # luma only: a grey frame
            return array
        array = np.zeros((h, w, 3), np.uint8)
        array[..., 0] = self.number % 256  # blue channel first: RGB888 is B, G, R in memory
        array[..., 2] = 255
        return array

    def get_metadata(self) -> dict:
        STATE.calls.append(("get_metadata", self.number))
        if self.released:
            STATE.violate(f"get_metadata on released request {self.number}")
        return {"SensorTimestamp": self.sensor_ts, "ExposureTime": 10000, "FrameDuration": 33333}

    def release(self) -> None:
        STATE.calls.append(("release", self.number))
        if self.released:
            STATE.violate(f"request {self.number} released twice")
        self.released = True


class Picamera2:
    """The camera: configure, start, capture requests, stop, close."""

    def __init__(self, camera_num: int = 0) -> None:
        STATE.calls.append(("Picamera2", camera_num))
        if camera_num >= STATE.cameras:
            raise IndexError("list index out of range")
        self.camera_num, self.config, self.started, self.closed = camera_num, None, False, False
        self.t0 = 10**12
        STATE.cameras_made.append(self)

    def create_video_configuration(self, main=None, lores=None, raw=None, controls=None, buffer_count=6, **kw) -> dict:
        STATE.calls.append(("create_video_configuration",))
        config = {"use_case": "video", "main": _check_stream(dict(main or {}), "main"),
                  "lores": _check_stream(dict(lores), "lores") if lores is not None else None,
                  "controls": dict(controls or {}), "buffer_count": buffer_count}
        return config

    def configure(self, config: dict) -> None:
        STATE.calls.append(("configure",))
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        main, lores = config["main"], config["lores"]
        if lores is not None:
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if STATE.platform == "VC4" and not lores["format"].startswith("YUV"):
                raise RuntimeError("lores stream must be YUV")
        self.config = config

    def start(self) -> None:
        STATE.calls.append(("start",))
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        if STATE.fail_start:
            raise RuntimeError(STATE.fail_start)
        self.started = True

    def capture_request(self, wait=None, signal_function=None, flush=None) -> CompletedRequest:
        STATE.calls.append(("capture_request", wait))
        if not self.started or self.closed:
            STATE.violate("capture_request on a camera that is not running")
        if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait <= 0:
            STATE.violate(f"capture_request(wait={wait!r}) can block forever on a stalled camera")
        delivered = len(STATE.requests)
        if STATE.stall_after is not None and delivered >= STATE.stall_after:
            STATE.queued_jobs += 1  # the job stays in picamera2's queue after the timeout
            raise TimeoutError()
        request = CompletedRequest(self, delivered)
        STATE.requests.append(request)
        return request

    def cancel_all_and_flush(self) -> None:
        STATE.calls.append(("cancel_all_and_flush",))
        STATE.queued_jobs = 0

    def stop(self) -> None:
        STATE.calls.append(("stop",))
        self.started = False

    def close(self) -> None:
        STATE.calls.append(("close",))
        if STATE.held():
            STATE.violate(f"camera closed while requests {STATE.held()} are held")
        if STATE.queued_jobs:
            STATE.violate("camera closed with a timed-out capture job still queued (cancel_all_and_flush first)")
        self.started, self.closed = False, True
