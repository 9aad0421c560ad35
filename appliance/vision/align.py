"""Align: similarity transform of BlazeFace keypoints onto the 112x112 ArcFace template."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

ALIGNED_SIZE = 112
# ArcFace 112x112 template: image-left eye, image-right eye, nose tip, mouth centre
# (the mouth centre is the midpoint of the template's two mouth corners).
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [56.1396, 92.2848]], np.float32)


def similarity(keypoints: np.ndarray) -> np.ndarray:
    """2x3 similarity transform mapping the face's 4 keypoints onto the template."""
    src = np.asarray(keypoints[:4], np.float32)
    matrix, _ = cv2.estimateAffinePartial2D(src, TEMPLATE, method=cv2.LMEDS)
    if matrix is None:
        raise InputError("face keypoints are degenerate; cannot align", fix="use a clearer image")
    return matrix


def align(frame: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The 112x112 BGR face crop, warped so the keypoints sit on the template."""
    return cv2.warpAffine(frame, similarity(keypoints), (ALIGNED_SIZE, ALIGNED_SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
