"""Low light: what changes when a frame or a face is dark (night, a dim street, gain noise).

Measured on the crowd clips (brightness x0.35 plus sensor noise; tools/lfr_tools/crowd.py,
docs/accuracy.md "Crowd clips and low light"), three findings shape this module:

- the detector misses more dark faces: BlazeFace sees a dark frame with little contrast, so a
  dark frame is searched on a gained copy (the gate, the alignment and the embedding still
  see the camera's pixels);
- the exposure check refused the dark faces that matched best: a face darker than
  ``min_brightness`` is kept when its grey contrast shows enough signal;
- the sharpness measure (Laplacian variance) falls with the square of the exposure, so a
  dark face's sharpness is judged as if it were exposed at ``min_brightness`` (gain capped).

Gain, gamma or denoising of the aligned face before embedding lowered the genuine scores
on the same clips (the embedder copes with dark faces better than with amplified noise):
the embedding sees the camera's pixels. What did raise them is time: the noise differs frame
to frame while the face does not, so a dark face is embedded as the mean of its track's last
few aligned crops, each registered onto the newest (SteadyCrops, steady_mean; `appliance bench
--only steady` measures the genuine and impostor scores both ways).
"""
from __future__ import annotations

import cv2
import numpy as np

LIFT_TARGET = 110.0  # mean grey a dark frame is lifted towards for the detector
SAMPLE_STRIDE = 16  # every 16th pixel of every 16th row estimates a frame's mean grey
MAX_SHIFT = 8.0  # px of a 112 px aligned crop: a larger shift between a track's crops is not jitter
MAX_DEFORM = 0.15  # nor a larger scale, rotation or shear
MIN_CORRELATION = 0.7  # ECC's correlation: below it the crops are not one face in one pose
MOTION = cv2.MOTION_AFFINE  # a Euclidean fit (no scale or shear) recovered less of the night scores
ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 15, 1e-3)  # 30 gave the same scores, 1.4x the time


def frame_gain(frame: np.ndarray, lift_below: float, max_gain: float, target: float) -> float:
    """The gain the detector's copy of ``frame`` gets: 1 unless the frame's mean grey is below
    ``lift_below``, then up to ``max_gain`` towards a mean of ``target``."""
    if lift_below <= 0 or max_gain <= 1:
        return 1.0
    mean = float(frame[::SAMPLE_STRIDE, ::SAMPLE_STRIDE].mean())
    if mean >= lift_below:
        return 1.0
    return float(min(max_gain, target / max(mean, 1.0)))


def lifted(frame: np.ndarray, gain: float, out: np.ndarray | None = None) -> np.ndarray:
    """``frame`` scaled by ``gain`` (saturating) into ``out`` when it fits, or the frame itself
    when the gain is 1."""
    if gain <= 1.0:
        return frame
    lut = np.clip(np.arange(256, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    if out is None or out.shape != frame.shape or out.dtype != frame.dtype:
        return cv2.LUT(frame, lut)
    return cv2.LUT(frame, lut, dst=out)


class FrameLift:
    """The detector's view of a dark frame: [detect] lowlight_lift_below and lowlight_max_gain.

    The lifted copy is written into one of two reused buffers (allocating a 1080p frame each
    time cost as much as the gain itself): a lifted frame stays valid for one more call.
    """

    def __init__(self, lift_below: float = 0.0, max_gain: float = 1.0, target: float = LIFT_TARGET) -> None:
        self.lift_below, self.max_gain, self.target = lift_below, max_gain, target
        self._buffers: list[np.ndarray] = []
        self.gain = 1.0  # the last frame's

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` as the detector should search it (the frame itself unless it is dark)."""
        gain = self.gain = frame_gain(frame, self.lift_below, self.max_gain, self.target)
        if gain <= 1.0:
            return frame
        if len(self._buffers) < 2 or self._buffers[0].shape != frame.shape:
            self._buffers = [np.empty_like(frame), np.empty_like(frame)]
        self._buffers.reverse()
        return lifted(frame, gain, self._buffers[0])


def exposed_sharpness(sharpness: float, brightness: float, floor: float, max_gain: float,
                      frame_gain: float = 1.0) -> float:
    """Sharpness as if the face were exposed normally: the Laplacian variance scales with the
    square of the exposure. The gain is the larger of what lifts a face darker than ``floor`` to
    ``floor`` and ``frame_gain``, the lift of the whole (dark) frame, capped at ``max_gain``: on a
    night frame a face of ordinary mean grey still has a third of its daylight contrast."""
    gain = max(floor / max(brightness, 1.0) if brightness < floor else 1.0, frame_gain)
    gain = min(max_gain, gain)
    if gain <= 1.0:
        return sharpness
    return sharpness * gain * gain


def dark_but_usable(brightness: float, contrast: float, min_brightness: float, min_contrast: float) -> bool:
    """A face below the exposure floor still carries a face: bright enough to hold one, and its
    grey contrast (standard deviation of the central region) at least ``min_contrast``."""
    return brightness >= min_brightness and contrast >= min_contrast


class SteadyCrops:
    """A dark face's last few aligned crops on its track, for temporal averaging before embedding.

    At night the embedder's input is dominated by sensor noise, which differs frame to frame while
    the aligned face does not: the mean of a track's last crops is a cleaner face. Measured on the
    night crowd clips (docs/accuracy.md), the genuine scores rose and the impostor maxima fell; by
    day it changed nothing but blurred the smallest faces, so only faces darker than
    ``[quality] lowlight_steady_below`` are averaged. In memory only, at most ``frames`` crops,
    overwritten as frames pass and wiped when a bright frame, the track's end or a re-join comes.
    """

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self._crops: list[tuple[int, np.ndarray]] = []

    def add(self, seq: int, crop: np.ndarray) -> None:
        """Keep a copy of ``crop`` of frame ``seq``; the oldest goes (wiped) beyond ``frames``, and
        any crop too old to be averaged any more (``before``) goes too."""
        self._crops.append((seq, crop.copy()))
        while len(self._crops) > self.frames or seq - self._crops[0][0] >= 2 * self.frames:
            self._crops.pop(0)[1].fill(0)

    def before(self, seq: int) -> list[np.ndarray]:
        """Copies of the crops of the ``frames - 1`` frames before ``seq`` that are recent (within
        twice the window), for the finish stage to average with the face it embeds."""
        recent = [crop for s, crop in self._crops if 0 < seq - s < 2 * self.frames]
        return [crop.copy() for crop in recent[-(self.frames - 1):]] if self.frames > 1 else []

    def wipe(self) -> None:
        """Overwrite and forget every crop."""
        for _, crop in self._crops:
            crop.fill(0)
        self._crops.clear()


def steady_mean(crops: list[np.ndarray]) -> np.ndarray:
    """The pixel mean of aligned crops of one face (uint8, rounded), each earlier crop first
    registered onto the last (an affine ECC fit on half-size blurred greys): the keypoints of a
    small dark face jitter, and a mean of misregistered crops is a blurred face. A crop that does
    not register (no convergence, correlation under MIN_CORRELATION) is left out."""
    last = crops[-1]
    target = _half_grey(last)
    stack = [last.astype(np.float32)]
    for crop in crops[:-1]:
        warp = register(target, _half_grey(crop))
        if warp is not None:
            warp[:, 2] *= 2  # the fit was at half size
            stack.append(cv2.warpAffine(crop.astype(np.float32), warp, crop.shape[1::-1],
                                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE))
    return np.rint(np.mean(np.stack(stack), axis=0)).astype(np.uint8)


def _half_grey(crop: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return cv2.GaussianBlur(cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), (3, 3), 0)


def register(target: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    """The affine warp taking ``target``'s pixels to ``moving``'s (ECC), or None when it fails."""
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        cc, warp = cv2.findTransformECC(target, moving, warp, MOTION, ECC_STOP, None, 1)
    except cv2.error:
        return None
    shift = float(np.abs(warp[:, 2]).max()) * 2
    if cc < MIN_CORRELATION or shift > MAX_SHIFT or np.abs(warp[:, :2] - np.eye(2)).max() > MAX_DEFORM:
        return None
    return warp
