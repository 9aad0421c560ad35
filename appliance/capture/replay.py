"""Replay: a video file or a folder of images, at a set frame rate or as fast as possible.

A real backend: the demo, the golden tests and the benchmarks run the real
pipeline on replayed frames.

An image folder may carry ``capture_times.txt``: one capture time per frame, in seconds
from the clip's start (non-decreasing). Frames then carry those times (``Frame.t_mono`` =
replay start + time), so a clip with gaps replays as the camera saw it (a paced replay
waits the gaps out); without it frame ``n`` is captured at ``n / fps``, or when read.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator, Literal

import cv2
import numpy as np
from pydantic import Field

from .. import imagefile
from ..errors import CaptureError
from ..paths import resolve
from .base import CaptureSettings, Frame

KEY = "replay"
RECONNECTS = False  # a file that ends has ended: the run is over


class Settings(CaptureSettings):
    """[capture] backend = "replay": a video file or an image folder."""

    backend: Literal[KEY] = KEY
    source: str = Field("", description="video file or folder of frames")
    fps: float = Field(0.0, ge=0.0, le=120.0, description="0 replays as fast as possible")
    loop: bool = False
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CAPTURE_TIMES = "capture_times.txt"


def probe() -> str | None:
    """Replay needs only OpenCV, which the appliance always has."""
    return None


def _image_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CaptureError(f"replay folder {folder} holds no images",
                           fix="point [capture] source at a folder of .jpg/.png frames or a video file")
    return paths


def capture_times(folder: Path) -> list[float] | None:
    """The folder's capture times (seconds from the start, one per frame), or None without the file."""
    path = folder / CAPTURE_TIMES
    if not folder.is_dir() or not path.is_file():
        return None
    frames = len(_image_paths(folder))
    try:
        times = [float(line) for line in path.read_text().split()]
    except ValueError:
        times = []
    if len(times) != frames or any(b < a for a, b in zip(times, times[1:])) or (times and times[0] < 0):
        raise CaptureError(f"{path} must hold {frames} non-decreasing times in seconds, one per frame",
                           fix="write one capture time per image, in seconds from the clip's start")
    return times


def _read_image(path: Path) -> np.ndarray:
    """One replay frame, its pixel count checked from the header before decoding (imagefile.py)."""
    try:
        return imagefile.read_file(path, cv2.IMREAD_UNCHANGED)
    except imagefile.ImageRefused as exc:
        raise CaptureError(f"cannot decode replay frame {path}: {exc}",
                           fix="remove or replace the broken or oversized file") from None


class ReplaySource:
    """Frames from a video file or an image folder, paced to ``fps`` (0: unpaced)."""

    def __init__(self, source: Path, fps: float, loop: bool, camera_id: str) -> None:
        if not source.exists():
            raise CaptureError(f"replay source {source} does not exist",
                               fix="set [capture] source to an existing video file or image folder")
        self.source, self.fps, self.loop, self.camera_id = source, fps, loop, camera_id
        self.live = fps > 0  # paced like a camera: the runner may drop frames under overload
        self._stop = threading.Event()
        self._video: cv2.VideoCapture | None = None
        self._times = capture_times(source)

    def __enter__(self) -> "ReplaySource":
        if self.source.is_file():
            self._video = cv2.VideoCapture(str(self.source))
            if not self._video.isOpened():
                raise CaptureError(f"cannot open video {self.source}",
                                   fix="give a video OpenCV can decode (mp4/avi/mkv) or an image folder")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._video is not None:
            self._video.release()

    def stop(self) -> None:
        """End the replay at the next frame."""
        self._stop.set()

    def _images(self) -> Iterator[np.ndarray]:
        if self._video is None:
            for path in _image_paths(self.source):
                yield _read_image(path)
            return
        self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while True:
            ok, image = self._video.read()
            if not ok:
                return
            yield image

    def frames(self) -> Iterator[Frame]:
        """Yield frames in order; with ``loop`` start again at the end."""
        seq, start = 0, time.monotonic()
        while not self._stop.is_set():
            produced = 0
            for image in self._images():
                if self._stop.is_set():
                    return
                captured = self._captured(start, seq)
                due = captured if captured is not None else (start + seq / self.fps if self.fps > 0 else None)
                if self.live and due is not None:
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                yield Frame(seq, time.monotonic() if captured is None else captured, image, self.camera_id,
                            paced=self.live)
                seq += 1
                produced += 1
            if produced == 0:
                raise CaptureError(f"replay source {self.source} yielded no frames",
                                   fix="check that the video is not empty or corrupt")
            if not self.loop:
                return

    def _captured(self, start: float, seq: int) -> float | None:
        """Frame ``seq``'s capture time from capture_times.txt (a loop continues after the last
        time plus one frame interval), or None without the file."""
        if not self._times:
            return None
        n = len(self._times)
        step = (self._times[-1] - self._times[0]) / (n - 1) if n > 1 else 1.0
        return start + (seq // n) * (self._times[-1] + step) + self._times[seq % n]


def open_source(cfg: Settings) -> ReplaySource:
    """Open the replay named by [capture] source."""
    if not cfg.source:
        raise CaptureError("[capture] source is empty", fix="set it to a video file or an image folder")
    return ReplaySource(resolve(cfg.source), cfg.fps, cfg.loop, cfg.camera_id)
