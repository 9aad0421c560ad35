"""What every capture backend yields: frames with a sequence number and a monotonic time."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import numpy as np
from pydantic import Field

from ..settings import Section


class CaptureSettings(Section):
    """Settings every capture backend has; a backend subclasses it with its own keys and a
    ``backend: Literal[KEY]`` tag (the config's ``[capture]`` section is their union)."""

    camera_id: str = Field("cam0", pattern=r"^[A-Za-z0-9_-]{1,32}$")


@dataclass
class Frame:
    """One captured frame. ``t_mono`` is time.monotonic() at capture."""

    seq: int
    t_mono: float
    image: np.ndarray = field(repr=False)
    camera_id: str = "cam0"
    # A smaller copy of the same exposure for the detector (the Pi camera's lores stream):
    # faces are found on ``lores`` and cropped from ``image``; a lores pixel is ``lores_scale``
    # main pixels. None when the source has one stream (detection runs on ``image``).
    lores: np.ndarray | None = field(default=None, repr=False)
    lores_scale: float = 1.0
    sensor_ts_ns: int | None = None  # the sensor's exposure timestamp, when the camera gives one
    # False for an unpaced replay: frames come as fast as they are taken, so their spacing is
    # not a frame rate the search plan could budget by (it uses [detect] nominal_fps instead)
    paced: bool = True


class FrameSource(Protocol):
    """A camera or replay; a context manager that always releases the device.

    ``live`` is what the runner reads besides the frames: True for a camera or a paced
    replay (under overload the newest frame wins and drops are counted), False for an
    unpaced replay (the runner waits, so every frame of the file is processed).
    """

    live: bool

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc: object) -> None: ...

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends or ``stop()`` is called."""
        ...

    def stop(self) -> None:
        """Ask ``frames()`` to end soon (called from another thread or a signal handler)."""
        ...
