"""Low light: what changes when a frame or a face is dark (night, a dim street, gain noise).

Measured on the crowd clips (brightness x0.35 plus sensor noise; tools/lfr_tools/crowd.py,
docs/accuracy.md "Low light"), three findings shape this module:

- the detector misses more dark faces: BlazeFace sees a dark frame with little contrast, so a
  dark frame is searched on a gained copy (the gate, the alignment and the embedding still
  see the camera's pixels);
- the exposure check refused the dark faces that matched best: a face darker than
  ``min_brightness`` is kept when its grey contrast shows enough signal;
- the sharpness measure (Laplacian variance) falls with the square of the exposure, so a
  dark face's sharpness is judged as if it were exposed at ``min_brightness`` (gain capped).

Gain, gamma or denoising of the aligned face before embedding lowered the genuine scores
on the same clips (the embedder copes with dark faces better than with amplified noise):
the embedding sees the camera's pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LIFT_TARGET = 110.0  # mean grey a dark frame is lifted towards for the detector
SAMPLE_STRIDE = 16  # every 16th pixel of every 16th row estimates a frame's mean grey


def frame_gain(frame: np.ndarray, lift_below: float, max_gain: float, target: float) -> float:
    """The gain the detector's copy of ``frame`` gets: 1 unless the frame's mean grey is below
    ``lift_below``, then up to ``max_gain`` towards a mean of ``target``."""
    if lift_below <= 0 or max_gain <= 1:
        return 1.0
    mean = float(frame[::SAMPLE_STRIDE, ::SAMPLE_STRIDE].mean())
    if mean >= lift_below:
        return 1.0
    return float(min(max_gain, target / max(mean, 1.0)))


def lifted(frame: np.ndarray, gain: float) -> np.ndarray:
    """``frame`` scaled by ``gain`` (saturating), or the frame itself when the gain is 1."""
    if gain <= 1.0:
        return frame
    lut = np.clip(np.arange(256, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.LUT(frame, lut)


@dataclass(frozen=True)
class FrameLift:
    """The detector's view of a dark frame: [detect] lowlight_lift_below and lowlight_max_gain."""

    lift_below: float = 0.0
    max_gain: float = 1.0
    target: float = LIFT_TARGET

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` as the detector should search it (the frame itself unless it is dark)."""
        return lifted(frame, frame_gain(frame, self.lift_below, self.max_gain, self.target))


def exposed_sharpness(sharpness: float, brightness: float, floor: float, max_gain: float) -> float:
    """Sharpness as if a face darker than ``floor`` were exposed at ``floor``: the Laplacian
    variance scales with the square of the exposure (gain capped at ``max_gain``)."""
    if brightness >= floor or max_gain <= 1:
        return sharpness
    gain = min(max_gain, floor / max(brightness, 1.0))
    return sharpness * gain * gain


def dark_but_usable(brightness: float, contrast: float, min_brightness: float, min_contrast: float) -> bool:
    """A face below the exposure floor still carries a face: bright enough to hold one, and its
    grey contrast (standard deviation of the central region) at least ``min_contrast``."""
    return brightness >= min_brightness and contrast >= min_contrast
