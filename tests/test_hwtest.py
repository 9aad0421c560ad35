"""`make hw-test` here, where there is no Hailo card and no Pi camera: the CPU part runs and agrees
with its committed reference vectors; the NPU and camera parts say precisely why they were skipped."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.inference import hailo

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # fetches the pinned demo photos and runs the CPU engine (~40 s)


def _hwtest():
    spec = importlib.util.spec_from_file_location("hwtest", REPO / "hw" / "hwtest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if hailo.probe() is None:
        pytest.skip("a Hailo device is present: this test is about the machines without one")
    hwtest, work = _hwtest(), tmp_path_factory.mktemp("hw")
    frames = work / "frames"
    frames.mkdir()
    photo = cv2.imread(str(_assets(hwtest, work) / "obama.jpg"))
    photo = cv2.resize(photo, (200, round(200 * photo.shape[0] / photo.shape[1])))
    for i in range(3):  # the same face at three places in a 1280x720 frame
        canvas = np.full((720, 1280, 3), 90, np.uint8)
        h, w = photo.shape[:2]
        canvas[100:100 + h, 200 + 300 * i:200 + 300 * i + w] = photo
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), canvas)
    out = work / "report" / "hw-test.json"
    assert hwtest.main(["--config", str(work / "none.toml"), "--out", str(out), "--work", str(work),
                        "--frames", str(frames), "--no-latency"]) == 0
    return json.loads(out.read_text())


def _assets(hwtest, work: Path) -> Path:
    from lfr_tools.demo import fetch_photos

    fetch_photos(work / "assets")
    return work / "assets"


def test_the_absent_hardware_is_reported_as_skipped_with_the_reason(report):
    assert report["npu"] == f"skipped: no Hailo device ({hailo.probe()})"
    assert report["npu_vs_cpu"] == report["npu"]
    assert report["camera"] == "skipped: no camera (picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2))"
    assert report["failed"] == []


def test_the_cpu_backend_runs_the_frames_and_agrees_with_its_reference_vectors(report):
    cpu = report["cpu"]
    assert cpu["frames"] == 3 and cpu["faces"] >= 3 and cpu["frames_per_s"] > 0
    agree = cpu["embedding_agreement"]
    assert agree["ok"] and agree["reference"] == "hw/reference/mobilefacenet_d8ba40c0127f.json"
    assert min(agree["cosine_to_reference"].values()) >= 0.99
    assert agree["same_person_cosine"] > agree["other_person_cosine"]
    assert report["profile"]["inference"] in ("litert", "onnx") and report["load_avg_1m"] >= 0


def test_detections_are_matched_by_iou():
    hwtest = _hwtest()
    a = [[np.array([0, 0, 10, 10.0]), np.array([50, 50, 70, 70.0])], []]
    b = [[np.array([1, 1, 11, 11.0])], [np.array([5, 5, 9, 9.0])]]
    m = hwtest.match_detections(a, b)
    assert (m["matched"], m["cpu_faces"], m["npu_faces"]) == (1, 2, 2)
    assert m["npu_found_of_cpu"] == 0.5 and m["cpu_found_of_npu"] == 0.5 and m["mean_iou"] == pytest.approx(0.681, abs=1e-3)
