"""The face mesh front end (region, points back in frame pixels) and the pose measure it feeds."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.vision.mesh import INPUT_PX, roi_transform
from appliance.vision.quality import yaw_of


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return points @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T


def test_yaw_is_the_nose_offset_along_the_eye_line_and_ignores_roll():
    frontal = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    turned = np.array([[-1.0, 0.0], [1.0, 0.0], [0.6, 1.0]])
    assert yaw_of(frontal) == pytest.approx(0.0)
    assert yaw_of(turned) == pytest.approx(0.3)
    assert yaw_of(_rotate(turned, 35)) == pytest.approx(0.3)


def test_roi_levels_the_eyes_and_centres_the_box():
    box = np.array([100.0, 80.0, 180.0, 180.0])
    eye_a, eye_b = np.array([120.0, 110.0]), np.array([160.0, 125.0])
    m = roi_transform(box, eye_a, eye_b)
    a, b = (m[:, :2] @ p + m[:, 2] for p in (eye_a, eye_b))
    assert abs(a[1] - b[1]) < 1e-6 and b[0] > a[0]
    centre = m[:, :2] @ np.array([140.0, 130.0]) + m[:, 2]
    assert np.allclose(centre, [INPUT_PX / 2, INPUT_PX / 2])
    assert np.linalg.norm(m[:, 0]) == pytest.approx(INPUT_PX / (1.5 * 100))


@pytest.mark.dataset
def test_mesh_points_follow_a_rolled_face(engine, lfw):
    image = cv2.imread(str(sorted((lfw / sorted(p.name for p in lfw.iterdir())[7]).glob("*.jpg"))[0]))
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    rolled = cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    found = []
    for img in (image, rolled):
        det = engine.detector.detect(img)[0]
        found.append(engine.mesh.points(img, det.box, det.keypoints))
    upright, turned = (f.points for f in found)
    mapped = upright @ turn[:, :2].T + turn[:, 2]
    assert np.abs(mapped - turned).max() < 4.0, "the five points move with the face"
    eyes = turned[1] - turned[0]
    assert np.degrees(np.arctan2(-eyes[1], eyes[0])) == pytest.approx(25, abs=4)


@pytest.mark.dataset
def test_a_face_the_mesh_shows_turned_away_is_counted_and_never_matched(engine, lfw):
    from appliance.capture.base import Frame
    from appliance.config import Config, QualityConfig
    from appliance.pipeline.frame import FrameProcessor
    from appliance.pipeline.match import Watchlist
    from appliance.vision.engine import FaceEngine
    from appliance.vision.quality import QualityGate

    image = cv2.imread(str(sorted((lfw / sorted(p.name for p in lfw.iterdir())[7]).glob("*.jpg"))[0]))
    strict = FaceEngine(engine.detector, engine.embedder, QualityGate(QualityConfig()), engine.mesh)
    enrolled = strict.enrol_image(image).embedding
    watchlist = Watchlist(["S-1"], enrolled[None], engine.model_id, [{"subject_ref": "S-1"}], "t")
    processor = FrameProcessor(Config(), strict, lambda: watchlist)
    analysed = processor.analyse(Frame(0, 0.0, image))
    assert len(analysed.chosen) == 1
    strict.gate.cfg = QualityConfig(max_yaw=0.0)  # now any yaw the mesh measures is too much
    assert processor.finish(analysed) == []
    face = analysed.chosen[0][0]
    assert face.reject == "pose" and face.embedding is None and face.frame is None
    assert processor.counters["quality_reject_pose"] == 1 and strict.gate.rejects["pose"] == 1
    assert processor.counters["matches"] == processor.counters["non_matches_discarded"] == 0
