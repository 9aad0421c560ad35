"""Quality gate: size, blur, exposure and pose. A rejected face is counted, never matched."""
from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from ..config import QualityConfig
from .detect import Detection

REASONS = ("size", "blur", "exposure", "pose")


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned face's central region (higher is sharper)."""
    gray = cv2.cvtColor(aligned_bgr[16:104, 16:96], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def brightness(aligned_bgr: np.ndarray) -> float:
    """Mean grey level of the aligned face's central region."""
    return float(cv2.cvtColor(aligned_bgr[24:96, 24:88], cv2.COLOR_BGR2GRAY).mean())


def yaw_ratio(det: Detection) -> float:
    """|nose offset from the eye midpoint| / eye distance: 0 frontal, ~0.5+ strongly turned."""
    eye_a, eye_b, nose = det.keypoints[0], det.keypoints[1], det.keypoints[2]
    eye_dist = float(np.linalg.norm(eye_b - eye_a))
    if eye_dist < 1e-6:
        return 1.0
    return abs(float(nose[0] - (eye_a[0] + eye_b[0]) / 2)) / eye_dist


class QualityGate:
    """Applies the configured checks and counts rejects by reason."""

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        self.rejects: Counter[str] = Counter()

    def check(self, det: Detection, aligned_bgr: np.ndarray) -> tuple[str | None, dict]:
        """Return (reject reason or None, measured quality) for one face."""
        q = {"height_px": round(det.height, 1), "sharpness": round(sharpness(aligned_bgr), 1),
             "brightness": round(brightness(aligned_bgr), 1), "yaw": round(yaw_ratio(det), 3),
             "det_score": round(det.score, 3)}
        reason = self._reason(q)
        if reason:
            self.rejects[reason] += 1
        return reason, q

    def _reason(self, q: dict) -> str | None:
        c = self.cfg
        if q["height_px"] < c.min_face_px:
            return "size"
        if q["sharpness"] < c.min_sharpness:
            return "blur"
        if not c.min_brightness <= q["brightness"] <= c.max_brightness:
            return "exposure"
        if q["yaw"] > c.max_yaw:
            return "pose"
        return None
