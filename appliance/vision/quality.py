"""Quality gate: size, blur, exposure and pose. A rejected face is counted, never matched."""
from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from .settings import QualityConfig
from .detect import Detection
from .lowlight import dark_but_usable, exposed_sharpness

REASONS = ("size", "blur", "exposure", "pose")


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned face's central region (higher is sharper)."""
    gray = cv2.cvtColor(aligned_bgr[16:104, 16:96], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def brightness(aligned_bgr: np.ndarray) -> float:
    """Mean grey level of the aligned face's central region."""
    return float(cv2.cvtColor(aligned_bgr[24:96, 24:88], cv2.COLOR_BGR2GRAY).mean())


def contrast(aligned_bgr: np.ndarray) -> float:
    """Standard deviation of the grey levels of the aligned face's central region."""
    return float(cv2.cvtColor(aligned_bgr[24:96, 24:88], cv2.COLOR_BGR2GRAY).std())


def yaw_of(landmarks: np.ndarray) -> float:
    """|nose offset from the eye midpoint, along the eye line| / eye distance: 0 frontal,
    ~0.5+ strongly turned. Landmarks start eye, eye, nose tip (BlazeFace's and the mesh's)."""
    eye_a, eye_b, nose = (np.asarray(p, np.float64) for p in landmarks[:3])
    axis = eye_b - eye_a
    eye_dist = float(np.linalg.norm(axis))
    if eye_dist < 1e-6:
        return 1.0
    return abs(float(np.dot(nose - (eye_a + eye_b) / 2, axis / eye_dist))) / eye_dist


def yaw_ratio(det: Detection) -> float:
    """The detector keypoints' yaw measure (see :func:`yaw_of`)."""
    return yaw_of(det.keypoints)


class QualityGate:
    """Applies the configured checks and counts rejects by reason."""

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        self.rejects: Counter[str] = Counter()

    def check(self, det: Detection, aligned_bgr: np.ndarray, frame_gain: float = 1.0) -> tuple[str | None, dict]:
        """Return (reject reason or None, measured quality) for one face; ``frame_gain`` is the
        lift the detector's copy of a dark frame got (its sharpness is judged as if exposed)."""
        q = {"height_px": round(det.height, 1), "sharpness": round(sharpness(aligned_bgr), 1),
             "brightness": round(brightness(aligned_bgr), 1), "contrast": round(contrast(aligned_bgr), 1),
             "yaw": round(yaw_ratio(det), 3),
             "det_score": round(det.score, 3)}
        reason = self._reason(q, frame_gain)
        if reason:
            self.rejects[reason] += 1
        return reason, q

    def pose_reject(self, q: dict) -> bool:
        """True (and counted) when the measured yaw is past the limit."""
        if q["yaw"] <= self.cfg.max_yaw:
            return False
        self.rejects["pose"] += 1
        return True

    def _reason(self, q: dict, frame_gain: float = 1.0) -> str | None:
        c = self.cfg
        if q["height_px"] < c.min_face_px:
            return "size"
        sharp = exposed_sharpness(q["sharpness"], q["brightness"], c.min_brightness, c.lowlight_sharpness_gain,
                                  frame_gain)
        if sharp < c.min_sharpness:
            return "blur"
        if not self._exposed(q):
            return "exposure"
        if q["yaw"] > c.max_yaw:
            return "pose"
        return None

    def _exposed(self, q: dict) -> bool:
        """Within the brightness bounds, or below them but dark and usable (lowlight.py)."""
        c = self.cfg
        if q["brightness"] > c.max_brightness:
            return False
        return q["brightness"] >= c.min_brightness or dark_but_usable(
            q["brightness"], q["contrast"], c.lowlight_min_brightness, c.lowlight_min_contrast)
