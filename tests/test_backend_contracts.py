"""Contract tests for the vendor SDKs that are absent here (HailoRT, picamera2), and the board profiles.

The SDK import lives in its backend file only (ARCHITECTURE.md, hardware abstraction):
a missing SDK must show up as "unavailable: <reason>" and choosing the backend must be
a BackendUnavailable naming that reason, never a NameError or ImportError. The SDKs
are made absent deterministically by putting None in sys.modules (Python then raises
ImportError on import), so these tests mean the same on a developer's Pi.

The Pi camera backend is exercised against a fake ``picamera2`` module that implements
only the documented Picamera2 calls the backend uses (Picamera2(), create_video_configuration(
main=...), configure, start, capture_array("main"), stop, close), with the argument checks
the real class makes (raspberrypi/picamera2, picamera2/picamera2.py). The real camera and
NPU are tested on the device by hw/tests/test_on_device.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from appliance import capture, inference
from appliance.capture import picamera2 as pi_backend
from appliance.cli import main
from appliance.config import CaptureConfig, load_config
from appliance.errors import BackendUnavailable, CaptureError, ModelError
from appliance.inference import hailo as hailo_backend

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "hw").glob("*.toml"))
APPLIANCE = Path(sys.executable).with_name("appliance")
# Sections a board profile spells out (sections added later fall back to their defaults
# until a profile needs to differ; [demo_watchlist] never belongs on a unit).
PROFILE_SECTIONS = ("unit", "capture", "inference", "detect", "quality", "match", "track", "runner",
                    "mqtt", "watchlist", "audit")


@pytest.fixture
def no_sdks(monkeypatch):
    """Make hailo_platform and picamera2 unimportable, as on any machine without them."""
    monkeypatch.setitem(sys.modules, "hailo_platform", None)
    monkeypatch.setitem(sys.modules, "picamera2", None)


# --- absent SDKs: probe, choose, and the `backends` listing -------------------------------------

def test_hailo_probe_names_the_missing_package(no_sdks):
    reason = hailo_backend.probe()
    assert reason is not None and "hailo_platform" in reason


def test_picamera2_probe_names_the_missing_package(no_sdks):
    reason = pi_backend.probe()
    assert reason is not None and "picamera2" in reason
    assert "apt install python3-picamera2" in reason  # tells the technician the fix


def test_choosing_hailo_is_backend_unavailable_with_the_reason(no_sdks):
    with pytest.raises(BackendUnavailable) as err:
        inference.choose("hailo")
    assert hailo_backend.probe() in err.value.message
    assert err.value.fix and err.value.exit_code == 6


def test_choosing_picamera2_is_backend_unavailable_with_the_reason(no_sdks):
    with pytest.raises(BackendUnavailable) as err:
        capture.choose("picamera2")
    assert pi_backend.probe() in err.value.message
    assert err.value.fix and err.value.exit_code == 6


def test_auto_passes_over_an_absent_npu(no_sdks):
    chosen = inference.choose("auto")
    assert chosen.KEY in ("litert", "onnx") and chosen.probe() is None


def test_backends_command_lists_every_backend_with_its_state(no_sdks, capsys):
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for kind, keys in (("inference", inference.BACKENDS), ("capture", capture.CAPTURES)):
        for key in keys:
            row = [line for line in lines if line.split()[:2] == [kind, key]]
            assert len(row) == 1, f"{kind} {key} listed {len(row)} times:\n" + "\n".join(lines)
            state = row[0].split(None, 2)[2]
            assert state == "available" or state.startswith("unavailable: "), row[0]
    text = "\n".join(lines)
    assert "hailo      unavailable: hailo_platform" in text
    assert "picamera2  unavailable: picamera2 is not installed" in text


def test_backends_console_script_runs_without_a_traceback():
    if not APPLIANCE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    proc = subprocess.run([str(APPLIANCE), "backends"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == len(inference.BACKENDS) + len(capture.CAPTURES)


# --- Hailo seam with the SDK present ------------------------------------------------------------

def test_hailo_with_sdk_but_no_card_names_the_device_node(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "hailo_platform", types.ModuleType("hailo_platform"))
    monkeypatch.setattr(hailo_backend, "DEVICE_NODE", tmp_path / "hailo0")
    reason = hailo_backend.probe()
    assert reason is not None and str(tmp_path / "hailo0") in reason


def test_hailo_with_sdk_and_card_is_available_but_refuses_a_model_it_has_no_hef_for(monkeypatch, tmp_path):
    node = tmp_path / "hailo0"
    node.touch()
    monkeypatch.setitem(sys.modules, "hailo_platform", types.ModuleType("hailo_platform"))
    monkeypatch.setattr(hailo_backend, "DEVICE_NODE", node)
    assert hailo_backend.probe() is None
    module = inference.choose("hailo")
    with pytest.raises(ModelError) as err:
        module.open_model("mobilefacenet")
    assert "no Hailo HEF 'mobilefacenet-hailo8l'" in err.value.message and "litert" in err.value.fix
    # the full NPU contract (versions, chip, pins, requests) is tests/test_hailo_backend.py


# --- Pi camera backend against a fake picamera2 ------------------------------------------------

STREAM_KEYS = {"format", "size", "stride", "preserve_ar"}  # picamera2 rejects other main= keys


class FakePicamera2:
    """Only the documented Picamera2 calls PiCamera uses, with the real argument checks."""

    opened: list["FakePicamera2"] = []
    fail_start = False
    fail_capture_after: int | None = None

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num, self.config, self.started, self.closed = camera_num, None, False, False
        self.captured = 0
        FakePicamera2.opened.append(self)

    def create_video_configuration(self, main=None, **kwargs) -> dict:
        """Mirror picamera2's checks: known stream keys, an even (w, h) tuple, a string format."""
        main = dict(main or {})
        assert set(main) <= STREAM_KEYS, f"bad stream keys {set(main) - STREAM_KEYS}"
        size = main.get("size", (1280, 720))
        assert type(size) is tuple and len(size) == 2 and not size[0] % 2 and not size[1] % 2
        assert isinstance(main.get("format", "XBGR8888"), str)
        return {"use_case": "video", "main": {"format": "XBGR8888", "size": size, **main}, **kwargs}

    def configure(self, config: dict) -> None:
        assert not self.started, "Camera must be stopped before configuring"
        self.config = config

    def start(self) -> None:
        assert self.config is not None, "camera not configured"
        if self.fail_start:
            raise RuntimeError("Failed to start camera: Device or resource busy")
        self.started = True

    def capture_array(self, name: str = "main", wait=None) -> np.ndarray:
        assert self.started and name == "main"
        if self.fail_capture_after is not None and self.captured >= self.fail_capture_after:
            raise RuntimeError("Camera frontend has timed out")
        self.captured += 1
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[0, 0] = (self.captured % 256, 0, 255)  # B, G, R as RGB888 lays them out
        return frame

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.stop()
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(FakePicamera2, "opened", [])
    monkeypatch.setattr(FakePicamera2, "fail_start", False)
    monkeypatch.setattr(FakePicamera2, "fail_capture_after", None)
    return FakePicamera2


def _take(source, n: int) -> list:
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            source.stop()
    return frames


def test_picamera2_is_available_when_the_module_imports(fake_picamera2):
    assert pi_backend.probe() is None
    assert capture.choose("picamera2") is pi_backend


def test_pi_camera_yields_frames_with_increasing_seq_and_monotonic_time(fake_picamera2):
    cam = pi_backend.open_source(CaptureConfig(backend="picamera2", camera_id="cam7"))
    with cam:
        frames = _take(cam, 6)
    assert [f.seq for f in frames] == list(range(6))
    times = [f.t_mono for f in frames]
    assert times == sorted(times) and times[-1] <= __import__("time").monotonic()
    assert all(f.camera_id == "cam7" and f.image.shape == (1080, 1920, 3) for f in frames)
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 3, 4, 5, 6]  # each capture, in order


def test_pi_camera_asks_for_1080p_rgb888_which_is_opencv_bgr(fake_picamera2):
    with pi_backend.open_source(CaptureConfig(backend="picamera2")) as cam:
        frame = _take(cam, 1)[0]
    main_stream = fake_picamera2.opened[0].config["main"]
    assert main_stream["size"] == (1920, 1080) and main_stream["format"] == "RGB888"
    assert tuple(frame.image[0, 0]) == (1, 0, 255)  # passed through untouched: red stays in channel 2


def test_pi_camera_is_released_on_exit_even_after_an_error(fake_picamera2):
    with pytest.raises(ZeroDivisionError):
        with pi_backend.open_source(CaptureConfig(backend="picamera2")) as cam:
            _take(cam, 2)
            1 / 0
    only = fake_picamera2.opened
    assert len(only) == 1 and only[0].closed and not only[0].started


def test_stop_from_another_thread_ends_the_stream(fake_picamera2):
    with pi_backend.open_source(CaptureConfig(backend="picamera2")) as cam:
        threading.Timer(0.05, cam.stop).start()
        count = sum(1 for _ in cam.frames())
    assert count >= 1 and fake_picamera2.opened[0].closed


def test_a_camera_that_will_not_start_is_a_capture_error_and_is_released(fake_picamera2):
    fake_picamera2.fail_start = True
    cam = pi_backend.open_source(CaptureConfig(backend="picamera2"))
    with pytest.raises(CaptureError) as err:
        with cam:
            pass
    assert "busy" in err.value.message and "rpicam-hello" in err.value.fix
    assert fake_picamera2.opened[0].closed, "a failed start must release the camera for the next attempt"


def test_a_camera_lost_mid_stream_is_a_capture_error(fake_picamera2):
    fake_picamera2.fail_capture_after = 3
    with pytest.raises(CaptureError) as err:
        with pi_backend.open_source(CaptureConfig(backend="picamera2")) as cam:
            _take(cam, 10)
    assert "timed out" in err.value.message and err.value.exit_code == 7
    assert fake_picamera2.opened[0].closed


# --- board profiles (hw/*.toml) -----------------------------------------------------------------

def test_the_four_board_profiles_exist():
    assert {p.stem for p in PROFILES} >= {"rpi5-hailo8l", "rpi5-cpu", "jetson-orin", "x86-dev"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profile_is_a_complete_valid_config(profile, capsys):
    assert main(["validate-config", str(profile)]) == 0
    assert capsys.readouterr().out.startswith(f"{profile}: OK")
    cfg = load_config(profile)
    assert cfg.inference.backend in inference.BACKENDS or cfg.inference.backend == "auto"
    assert cfg.capture.backend in capture.CAPTURES
    text = profile.read_text()
    for section in PROFILE_SECTIONS:
        assert section in type(cfg).model_fields, f"[{section}] is no longer a config section"
        assert f"[{section}]" in text, f"{profile.name} leaves [{section}] to the defaults"


@pytest.mark.parametrize("profile, backend", [("rpi5-hailo8l", "hailo"), ("rpi5-cpu", "litert"),
                                              ("jetson-orin", "onnx"), ("x86-dev", "litert")])
def test_profile_picks_the_boards_backends(profile, backend):
    cfg = load_config(REPO / "hw" / f"{profile}.toml")
    assert cfg.inference.backend == backend
    assert cfg.capture.backend == ("picamera2" if profile.startswith("rpi5") else "opencv")


def test_running_the_hailo_profile_here_fails_cleanly_naming_the_sdk(tmp_path):
    if not APPLIANCE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    if hailo_backend.probe() is None:
        pytest.skip("a Hailo NPU is present here; the absent-SDK contract does not apply")
    text = (REPO / "hw" / "rpi5-hailo8l.toml").read_text()
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(text.replace('"/var/lib/appliance"', f'"{tmp_path / "data"}"'))
    proc = subprocess.run([str(APPLIANCE), "run", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == BackendUnavailable.exit_code, proc.stderr
    assert "hailo_platform" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
