"""Face mesh (MediaPipe face_landmark.tflite): 468 points -> five alignment points and pose.

The detector's keypoints are coarse (BlazeFace gives a mouth centre, not corners,
and eyes to a few pixels). The mesh is run on a square region around the face,
1.5 times the detector's box, rotated so the eyes are level (MediaPipe's own
face-landmark front end). Its points give the five ArcFace points (eye centres,
nose tip, mouth corners) for alignment, and a yaw measure for the quality gate.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..inference.base import Model

MESH_MODEL = "face-mesh"
INPUT_PX = 192
ROI_SCALE = 1.5  # MediaPipe's face-landmark ROI: the detection box, 1.5x, square on its long side
MIN_PRESENCE = 0.5
# The unit runs the mesh twice: the second time on the region its own first points span (the
# ablation in docs/accuracy.md: TPIR at FPIR 1e-3 79.8% -> 82.0% on the test split, +1.4 ms a face).
PASSES = 2
# Mesh indices (MediaPipe canonical face mesh). Image-left eye = the person's right eye.
EYE_IMAGE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
EYE_IMAGE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
NOSE_TIP = 1
MOUTH_IMAGE_LEFT, MOUTH_IMAGE_RIGHT = 61, 291


@dataclass(frozen=True)
class MeshPoints:
    """The mesh's five alignment points in frame pixels and its face-presence score."""

    points: np.ndarray  # (5, 2): image-left eye, image-right eye, nose tip, mouth left, mouth right
    presence: float


def roi_transform(box: np.ndarray, eye_a: np.ndarray, eye_b: np.ndarray) -> np.ndarray:
    """2x3 affine mapping the frame onto the mesh's 192x192 input (eyes level, face centred)."""
    side = ROI_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    angle = float(np.degrees(np.arctan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])))
    matrix = cv2.getRotationMatrix2D(centre, angle, INPUT_PX / max(side, 1.0))
    matrix[:, 2] += (INPUT_PX / 2 - centre[0], INPUT_PX / 2 - centre[1])
    return matrix


def five_points(mesh_xy: np.ndarray) -> np.ndarray:
    """The ArcFace five points from 468 mesh points (eye centres are eye-contour means)."""
    return np.stack([mesh_xy[list(EYE_IMAGE_LEFT)].mean(axis=0), mesh_xy[list(EYE_IMAGE_RIGHT)].mean(axis=0),
                     mesh_xy[NOSE_TIP], mesh_xy[MOUTH_IMAGE_LEFT], mesh_xy[MOUTH_IMAGE_RIGHT]]).astype(np.float32)


def _outputs(raw: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """(468, 3) landmarks and the presence logit, told apart by size (backends may reorder them)."""
    landmarks = next(a for a in raw if a.size >= 1404)
    flag = next(a for a in raw if a.size == 1)
    return landmarks.reshape(-1, 3)[:468], float(flag.reshape(-1)[0])


class FaceMesh:
    """The face mesh on an inference backend."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def landmarks(self, frame: np.ndarray, box: np.ndarray, eye_a: np.ndarray,
                  eye_b: np.ndarray) -> tuple[np.ndarray, float]:
        """The 468 mesh points (x, y) in frame pixels and the face-presence score, for the
        square region 1.5x ``box`` turned so that ``eye_a`` -> ``eye_b`` is level."""
        matrix = roi_transform(box, eye_a, eye_b)
        roi = cv2.warpAffine(frame, matrix, (INPUT_PX, INPUT_PX), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT)
        x = cv2.cvtColor(roi, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        raw, logit = _outputs(self.model.run(x))
        back = cv2.invertAffineTransform(matrix)
        presence = float(1.0 / (1.0 + np.exp(-np.clip(logit, -80, 80))))
        return raw[:, :2] @ back[:, :2].T + back[:, 2], presence

    def points(self, frame: np.ndarray, box: np.ndarray, keypoints: np.ndarray,
               passes: int = PASSES) -> MeshPoints | None:
        """Five alignment points of the face in ``box`` (the detector's first two keypoints,
        the eyes, set the roll), or None when the mesh finds no face there. A second pass
        runs the mesh again on the region its own first points span (MediaPipe's tracking ROI)."""
        xy, presence = self.landmarks(frame, box, keypoints[0], keypoints[1])
        for _ in range(passes - 1):
            if presence < MIN_PRESENCE:
                break
            five = five_points(xy)
            xy, presence = self.landmarks(frame, np.r_[xy.min(axis=0), xy.max(axis=0)], five[0], five[1])
        if presence < MIN_PRESENCE:
            return None
        return MeshPoints(five_points(xy), presence)
