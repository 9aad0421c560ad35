"""Low-light handling (appliance/vision/lowlight.py): the detector's lifted view of a dark frame,
and the quality gate's rules for dark faces; day frames and faces are left as they were."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.config import QualityConfig
from appliance.vision.detect import Detection
from appliance.vision.lowlight import FrameLift, dark_but_usable, exposed_sharpness, frame_gain
from appliance.vision.quality import QualityGate


def _frame(level: int) -> np.ndarray:
    return np.full((64, 96, 3), level, np.uint8)


def test_a_dark_frame_is_lifted_towards_the_target_and_a_day_frame_is_not_copied():
    lift = FrameLift(lift_below=70, max_gain=3.0, target=110)
    night = lift(_frame(40))
    assert night.mean() == pytest.approx(110, abs=1)
    assert lift(_frame(20)).mean() == pytest.approx(60, abs=1)  # the gain is capped at 3
    day = _frame(120)
    assert lift(day) is day
    off = FrameLift()
    dark = _frame(10)
    assert off(dark) is dark
    assert frame_gain(_frame(40), 0, 3.0, 110) == 1.0


def test_a_lifted_frame_stays_valid_for_one_more_call():
    lift = FrameLift(lift_below=70, max_gain=3.0, target=110)
    first = lift(_frame(40))
    second = lift(_frame(20))
    assert first is not second and first.mean() == pytest.approx(110, abs=1)
    assert lift(_frame(30)) is first  # the buffers alternate


def test_a_dark_faces_sharpness_is_judged_as_if_exposed_at_the_floor():
    assert exposed_sharpness(10.0, 20.0, floor=40.0, max_gain=2.0) == pytest.approx(40.0)
    assert exposed_sharpness(10.0, 10.0, floor=40.0, max_gain=2.0) == pytest.approx(40.0)  # capped
    assert exposed_sharpness(10.0, 50.0, floor=40.0, max_gain=2.0) == 10.0
    assert exposed_sharpness(10.0, 20.0, floor=40.0, max_gain=1.0) == 10.0


def test_on_a_lifted_night_frame_every_face_is_judged_as_if_the_frame_were_exposed():
    assert exposed_sharpness(10.0, 50.0, floor=40.0, max_gain=2.0, frame_gain=1.5) == pytest.approx(22.5)
    assert exposed_sharpness(10.0, 50.0, floor=40.0, max_gain=2.0, frame_gain=3.0) == pytest.approx(40.0)  # capped
    assert exposed_sharpness(10.0, 20.0, floor=40.0, max_gain=2.0, frame_gain=1.2) == pytest.approx(40.0)
    assert exposed_sharpness(10.0, 50.0, floor=40.0, max_gain=1.0, frame_gain=3.0) == 10.0  # rule off
    face = _aligned(60, 2)  # ordinary mean grey, a third of a day face's contrast
    gate = QualityGate(QualityConfig())
    assert 15.0 / 4 < gate.check(_det(), face)[1]["sharpness"] < 15.0
    assert gate.check(_det(), face)[0] == "blur", "by day (no lift) a flat face is blurred"
    assert gate.check(_det(), face, frame_gain=3.0)[0] is None, "on a night frame lifted x3 it is dim, not blurred"


def test_dark_but_usable_needs_both_some_light_and_some_contrast():
    assert dark_but_usable(25.0, 12.0, 15.0, 8.0)
    assert not dark_but_usable(10.0, 12.0, 15.0, 8.0)
    assert not dark_but_usable(25.0, 4.0, 15.0, 8.0)


def _aligned(mean: float, spread: float, seed: int = 0) -> np.ndarray:
    """A 112x112 'face' of a given mean grey and contrast: sharp edges (a checkerboard)."""
    cells = (np.indices((112, 112)) // 8).sum(axis=0) % 2
    grey = mean + spread * (2 * cells - 1)
    return np.clip(np.repeat(grey[..., None], 3, axis=2), 0, 255).astype(np.uint8)


def _det() -> Detection:
    kps = np.array([[40, 50], [70, 50], [55, 65], [55, 80], [30, 55], [80, 55]], np.float32)
    return Detection(np.array([20, 30, 90, 110], np.float32), 0.9, kps)


def test_the_gate_keeps_a_dark_contrasted_face_and_refuses_a_flat_one():
    gate = QualityGate(QualityConfig())
    reason, q = gate.check(_det(), _aligned(28, 12))
    assert reason is None and q["brightness"] < 40 and q["contrast"] >= 8
    assert gate.check(_det(), _aligned(28, 2))[0] in {"exposure", "blur"}
    assert gate.check(_det(), _aligned(8, 6))[0] == "exposure"


def test_with_the_low_light_rules_off_the_gate_refuses_dark_faces_as_before():
    cfg = QualityConfig(lowlight_min_brightness=40.0, lowlight_sharpness_gain=1.0)
    assert QualityGate(cfg).check(_det(), _aligned(28, 12))[0] == "exposure"
    assert QualityGate(QualityConfig()).check(_det(), _aligned(120, 40))[0] is None
