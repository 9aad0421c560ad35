"""A live camera that is lost comes back: status camera_lost, an audited fault, a reconnect loop.

Through the real capture registry: the OpenCV backend (a live source) reading a short video
file, which ends like an unplugged camera (reads fail), and a camera that cannot be opened at
first (unplugged at boot). The unit keeps running and frames flow again after each loss.
"""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np

from appliance.audit.log import connect, iter_entries
from appliance.capture import opencv as opencv_backend
from appliance.config import parse_config
from appliance.errors import CaptureError
from appliance.unit import Unit
from conftest import provision


def _video(path, frames=8):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), 25 * i, np.uint8))
    writer.release()
    return path


def _config(tmp_path):
    provision(tmp_path / "data")
    return parse_config({"unit": {"data_dir": str(tmp_path / "data")},
                         "capture": {"backend": "opencv", "source": str(_video(tmp_path / "cam.avi"))}},
                        tmp_path / "unit.toml")


def _faults(data_dir):
    db = connect(data_dir / "audit.db", readonly=True)
    return [e["payload"] for e in (json.loads(b) for _, b, _ in iter_entries(db)) if e["type"] == "fault"]


def _run_until(unit, frames: int, timeout: float = 60.0) -> tuple:
    """Run the unit in this thread; watch its status from another; stop after ``frames`` frames."""
    states = []

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = unit.status()
            states.append(status["state"])
            if status["frames"] >= frames:
                break
            time.sleep(0.02)
        unit.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = unit.run(install_signals=False)
    watcher.join(5)
    return result, states


def test_a_camera_that_stops_delivering_is_reconnected(engine, tmp_path):
    with Unit.open(_config(tmp_path), engine=engine) as unit:
        result, states = _run_until(unit, frames=20)
        reconnects = unit.camera.reconnects
    assert result.error is None, result.error
    assert result.counters["frames"] >= 20, "frames flowed again after each loss (8 per opening)"
    assert reconnects >= 2 and "camera_lost" in states and states[-1] in ("running", "camera_lost")
    lost = [f for f in _faults(tmp_path / "data") if f["kind"] == "camera_lost"]
    assert len(lost) == reconnects, "one audited fault per outage"
    assert all(f["detail"].startswith("capture: ") for f in lost)


def test_a_camera_absent_at_start_is_waited_for(engine, tmp_path, monkeypatch):
    real_enter = opencv_backend.OpenCVCamera.__enter__
    opens = {"n": 0}

    def flaky_enter(self):
        opens["n"] += 1
        if opens["n"] <= 2:
            raise CaptureError("cannot open camera (unplugged)", fix="plug it in")
        return real_enter(self)

    monkeypatch.setattr(opencv_backend.OpenCVCamera, "__enter__", flaky_enter)
    with Unit.open(_config(tmp_path), engine=engine) as unit:
        result, states = _run_until(unit, frames=5)
    assert result.error is None and result.counters["frames"] >= 5
    assert opens["n"] >= 3 and "camera_lost" in states
    assert [f["kind"] for f in _faults(tmp_path / "data")][:1] == ["camera_lost"]


def test_a_replay_that_ends_is_not_reconnected(engine, tmp_path):
    """A file replay ending is the end of the run, not a lost camera."""
    provision(tmp_path / "data")
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((120, 160, 3), 40 * i, np.uint8))
    cfg = parse_config({"unit": {"data_dir": str(tmp_path / "data")}, "capture": {"source": str(folder)}},
                       tmp_path / "unit.toml")
    with Unit.open(cfg, engine=engine) as unit:
        result = unit.run(install_signals=False)
        assert unit.camera is None
    assert result.error is None and result.counters["frames"] == 4 and _faults(tmp_path / "data") == []
