"""Detection on the camera's lores stream, crops from main: boxes, keypoints and focus windows
are mapped between the two streams by the frame's lores_scale."""
from __future__ import annotations

import numpy as np

from appliance.config import QualityConfig
from appliance.vision.align import align
from appliance.vision.detect import Detection
from appliance.vision.engine import FaceEngine
from appliance.vision.quality import QualityGate

KPS = np.array([[30, 40], [50, 40], [40, 50], [40, 60], [25, 45], [55, 45]], np.float32)  # lores pixels


class ScriptedDetector:
    """Returns one face in the pixels of whatever image it is given; records its inputs."""

    def __init__(self) -> None:
        self.seen = []

    def detect(self, frame, seq=None, focus=(), paced=True):
        self.seen.append((frame.shape, [np.asarray(b).tolist() for b in focus]))
        return [Detection(np.array([20, 30, 60, 70], np.float32), 0.9, KPS.copy())]


def test_faces_found_on_lores_are_mapped_to_main_and_cropped_from_main():
    rng = np.random.default_rng(3)
    main = rng.integers(0, 255, (720, 1280, 3), np.uint8)
    lores = np.zeros((240, 428, 3), np.uint8)  # different content: a crop from lores would be black
    detector = ScriptedDetector()
    engine = FaceEngine(detector, embedder=None, gate=QualityGate(QualityConfig(min_face_px=8, min_sharpness=0,
                                                                                min_brightness=0)))
    faces = engine.analyse(main, seq=5, focus=[np.array([300, 300, 360, 360])], lores=lores, lores_scale=3.0)
    assert detector.seen == [((240, 428, 3), [[100.0, 100.0, 120.0, 120.0]])]  # focus box in lores pixels
    face = faces[0]
    np.testing.assert_allclose(face.det.box, [60, 90, 180, 210])
    np.testing.assert_allclose(face.det.keypoints, KPS * 3)
    assert face.quality["height_px"] == 120.0  # measured in main pixels
    np.testing.assert_array_equal(face.aligned, align(main, KPS * 3))
    assert face.aligned.mean() > 50  # from the random main frame, not the black lores


def test_without_lores_the_detector_sees_the_main_frame():
    detector = ScriptedDetector()
    engine = FaceEngine(detector, embedder=None, gate=QualityGate(QualityConfig()))
    engine.analyse(np.zeros((480, 640, 3), np.uint8), seq=1, focus=[np.array([1, 2, 3, 4])])
    assert detector.seen == [((480, 640, 3), [[1, 2, 3, 4]])]
