"""Align: a similarity transform of a face's landmarks onto the embedder's 112x112 template.

Generic over the landmark set a detector (or the face mesh) gives; the set is
known by its number of points:
- 6 (BlazeFace): image-left eye, image-right eye, nose tip, mouth centre (+ two
  ear points, unused), onto the ArcFace template with the mouth corners merged;
- 5 (the face mesh's five points, SCRFD, RetinaFace, MTCNN): image-left eye,
  image-right eye, nose tip, image-left and image-right mouth corner, onto the
  ArcFace template itself.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

ALIGNED_SIZE = 112
# ArcFace 112x112 template (InsightFace): eyes, nose tip, mouth corners, image left first.
ARCFACE_5 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                      [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
# BlazeFace gives a mouth centre: the template's mouth is the midpoint of its two corners.
ARCFACE_4 = np.vstack([ARCFACE_5[:3], ARCFACE_5[3:].mean(axis=0)]).astype(np.float32)
# number of landmarks -> (the landmarks used, the template they map onto)
LANDMARK_SETS = {6: (slice(0, 4), ARCFACE_4), 5: (slice(0, 5), ARCFACE_5)}
TEMPLATE = ARCFACE_4  # the BlazeFace template (kept for callers of the four-point alignment)


def template_for(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source points, template points) for a landmark set, known by its size."""
    pts = np.asarray(landmarks, np.float32)
    if pts.ndim != 2 or pts.shape[0] not in LANDMARK_SETS:
        raise InputError(f"no alignment template for {pts.shape[0] if pts.ndim == 2 else pts.shape} landmarks",
                         fix=f"give one of the landmark sets {sorted(LANDMARK_SETS)} (align.LANDMARK_SETS)")
    used, template = LANDMARK_SETS[pts.shape[0]]
    return pts[used], template


def least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """2x3 similarity minimising the squared distances (Umeyama 1991; InsightFace's own
    alignment); None when the source points coincide."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = float((s ** 2).sum())
    if var < 1e-9:
        return None
    a = float((s * d).sum())                                        # sum of x.x' + y.y'
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum())        # sum of x.y' - y.x'
    c, n = a / var, b / var                                         # scale*cos, scale*sin
    rot = np.array([[c, -n], [n, c]], np.float64)
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]]).astype(np.float64)


def similarity(landmarks: np.ndarray, method: str = "lmeds") -> np.ndarray:
    """2x3 similarity transform mapping the face's landmarks onto their template.

    ``lmeds`` (least median of squares) ignores up to half the points when they
    disagree, suited to coarse detector keypoints; ``lsq`` fits all of them.
    """
    src, template = template_for(landmarks)
    if method == "lsq":
        matrix = least_squares(src, template)
    else:
        matrix, _ = cv2.estimateAffinePartial2D(src, template, method=cv2.LMEDS)
    if matrix is None:
        raise InputError("face keypoints are degenerate; cannot align", fix="use a clearer image")
    return matrix


def align(frame: np.ndarray, landmarks: np.ndarray, method: str = "lmeds") -> np.ndarray:
    """The 112x112 BGR face crop, warped so the landmarks sit on the template."""
    return cv2.warpAffine(frame, similarity(landmarks, method), (ALIGNED_SIZE, ALIGNED_SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
