"""SCRFD decoding: known answers at every stride, nothing from an empty frame, NMS, frame mapping.

The output tensors are built the way the Hailo Model Zoo's scrfd HEFs lay them out
(docs/hardware.md): per stride 8/16/32 a box map (H, W, 8), a score map (H, W, 2) and a
keypoint map (H, W, 20), two anchors per cell, anchor centre (col * s, row * s), distances
and keypoint offsets in stride units. A face is written at one anchor as its distances
from that anchor's centre; decoding must give back the face's pixel box and keypoints.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from appliance.errors import ModelError
from appliance.vision.scrfd import SCRFDDetector, decode, nms, split_outputs

SIZE = 640


def empty_outputs(size: int = SIZE, score: float = 0.01) -> dict:
    out = {}
    for s in (8, 16, 32):
        n = size // s
        out[s] = [np.zeros((n, n, 8), np.float32), np.full((n, n, 2), score, np.float32),
                  np.zeros((n, n, 20), np.float32)]
    return out


def place(out: dict, stride: int, row: int, col: int, anchor: int, box, kps, score: float) -> None:
    """Encode a face (box xyxy and five keypoints, input pixels) at one anchor of one stride."""
    cx, cy = col * stride, row * stride
    x1, y1, x2, y2 = box
    out[stride][0][row, col, anchor * 4:anchor * 4 + 4] = np.array([cx - x1, cy - y1, x2 - cx, y2 - cy]) / stride
    out[stride][1][row, col, anchor] = score
    offsets = (np.asarray(kps, np.float32) - [cx, cy]) / stride
    out[stride][2][row, col, anchor * 10:anchor * 10 + 10] = offsets.reshape(-1)


def flat(out: dict, shuffle: bool = False) -> list[np.ndarray]:
    tensors = [t[None] for s in (8, 16, 32) for t in out[s]]  # with a batch axis, as HailoRT gives
    if shuffle:
        random.Random(7).shuffle(tensors)
    return tensors


FACES = [  # stride, row, col, anchor, box, keypoints (eyes, nose, mouth corners), score
    (8, 30, 41, 0, (320.0, 232.0, 344.0, 262.0), [(326, 242), (338, 242), (332, 249), (327, 255), (337, 255)], 0.91),
    (8, 5, 70, 1, (552.0, 28.0, 570.0, 50.0), [(556, 36), (566, 36), (561, 41), (557, 45), (565, 45)], 0.77),
    (16, 20, 10, 1, (130.0, 280.0, 190.0, 360.0), [(146, 308), (174, 308), (160, 325), (149, 342), (171, 342)], 0.88),
    (32, 4, 15, 0, (400.0, 60.0, 560.0, 260.0), [(440, 135), (520, 135), (480, 180), (450, 220), (510, 220)], 0.95),
]


def test_faces_at_every_stride_decode_to_their_boxes_and_keypoints():
    out = empty_outputs()
    for face in FACES:
        place(out, *face)
    boxes, scores, kps = decode(flat(out, shuffle=True), SIZE, 0.5)
    assert len(boxes) == len(FACES)
    by_score = {round(float(s), 2): i for i, s in enumerate(scores)}
    for stride, _, _, _, box, five, score in FACES:
        i = by_score[score]
        np.testing.assert_allclose(boxes[i], box, atol=1e-3, err_msg=f"stride {stride}")
        np.testing.assert_allclose(kps[i], five, atol=1e-3, err_msg=f"stride {stride}")


def test_a_frame_with_no_face_decodes_to_none():
    boxes, scores, kps = decode(flat(empty_outputs(score=0.2)), SIZE, 0.5)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and kps.shape == (0, 5, 2)


def test_anchor_centres_have_no_half_cell_offset_and_anchor_pairs_share_a_cell():
    out = empty_outputs()
    # the same face written at anchor 0 and at anchor 1 of one cell decodes to the same box
    place(out, 16, 7, 9, 0, (120.0, 90.0, 170.0, 150.0), [(135, 110)] * 5, 0.9)
    place(out, 16, 7, 9, 1, (120.0, 90.0, 170.0, 150.0), [(135, 110)] * 5, 0.8)
    boxes, _, _ = decode(flat(out), SIZE, 0.5)
    np.testing.assert_allclose(boxes, [[120, 90, 170, 150]] * 2, atol=1e-3)
    zero = empty_outputs()
    zero[16][1][7, 9, 1] = 0.9  # zero distances: the box collapses onto the anchor centre
    centre, _, _ = decode(flat(zero), SIZE, 0.5)
    np.testing.assert_allclose(centre[0], [9 * 16, 7 * 16] * 2)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.7, 0.5], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 2, 0, 3]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.4).tolist() == []


def test_missing_outputs_are_a_model_error_naming_the_fix():
    tensors = flat(empty_outputs())[:-1]  # the stride-32 keypoints are gone
    with pytest.raises(ModelError, match="stride-32 keypoints") as err:
        split_outputs(tensors, SIZE)
    assert "scrfd" in err.value.fix.lower()


class ScriptedModel:
    """A pixel-input model that returns fixed outputs and records what it was fed."""

    input_shape = (1, SIZE, SIZE, 3)
    pixels = True

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs, self.fed = outputs, []

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.fed.append(x)
        return self.outputs


def test_detector_letterboxes_the_frame_and_maps_faces_back_to_frame_pixels():
    out = empty_outputs()
    place(out, *FACES[2])  # box (130, 280, 190, 360) in the 640 input
    model = ScriptedModel(flat(out))
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, :, 2] = 200  # red in BGR
    dets = SCRFDDetector(model, 0.5, 0.4).detect(frame)
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].box, [260, 560, 380, 720], atol=1e-2)  # x2: 1280 -> 640
    kp = dets[0].keypoints
    assert kp.shape == (6, 2)
    np.testing.assert_allclose(kp[3], [(149 + 171), (342 + 342)], atol=1e-2)  # mouth centre, doubled
    fed = model.fed[0]
    assert fed.shape == (1, SIZE, SIZE, 3) and fed.dtype == np.uint8
    assert tuple(fed[0, 10, 10]) == (200, 0, 0)  # RGB order for the network
    assert fed[0, 400:, :].max() == 0  # the 1280x720 frame fills rows 0..359: black padding below


def test_detector_on_an_empty_frame_finds_nothing():
    model = ScriptedModel(flat(empty_outputs(score=0.3)))
    assert SCRFDDetector(model, 0.5, 0.4).detect(np.zeros((360, 640, 3), np.uint8)) == []
