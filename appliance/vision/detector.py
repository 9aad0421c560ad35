"""The detector protocol the face engine runs: BlazeFace over tiles (detect.FaceDetector) on the
CPU, SCRFD on the NPU (scrfd.SCRFDDetector). Both return Detections in the pixels of the image
they were given; a detection made on a camera's lores stream is mapped to the main stream here."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from .detect import Detection


class Detector(Protocol):
    """Finds faces in a BGR image: boxes xyxy and keypoints (eye, eye, nose, mouth centre, ...)."""

    def detect(self, frame: np.ndarray, seq: int | None = None,
               focus: Sequence[np.ndarray] = (), paced: bool = True) -> list[Detection]:
        """Faces in ``frame``; ``seq``, ``focus`` (predicted track boxes) and ``paced`` (False: an
        unpaced replay, whose frame spacing is no frame rate) let a detector plan a stream."""
        ...

    def models(self) -> list:
        """The models it runs (the engine closes them)."""
        ...


def scaled(detections: list[Detection], scale: float) -> list[Detection]:
    """Detections made on an image ``scale`` times smaller, in the larger image's pixels."""
    if scale == 1.0:
        return detections
    return [Detection(d.box * scale, d.score, d.keypoints * scale) for d in detections]
