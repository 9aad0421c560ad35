"""What every capture backend yields: frames with a sequence number and a monotonic time."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

import numpy as np


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


class FrameSource(Protocol):
    """A camera or replay; a context manager that always releases the device."""

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc: object) -> None: ...

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends or ``stop()`` is called."""
        ...

    def stop(self) -> None:
        """Ask ``frames()`` to end soon (called from another thread or a signal handler)."""
        ...
