"""On-device tests: run on a real Raspberry Pi 5 (camera, optional Hailo-8L); skip elsewhere with the reason.

Run on the unit, from the repository (see hw/README.md):

    .venv/bin/python -m pytest -v -ra hw/tests

Each test needs something only the device has (picamera2 and a camera, hailo_platform
and /dev/hailo0, the installed config); where that is missing the test is skipped and
says why, so a green run here proves nothing about the hardware: read the skip reasons.
Environment:
  APPLIANCE_CONFIG            the unit's config (default /etc/appliance/appliance.toml)
  APPLIANCE_TEST_CARD_IN_VIEW set to 1 when a printed face test card is held ~2 m in
                              front of the camera: the detector must then find a face.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance import capture
from appliance.config import load_config
from appliance.errors import BackendUnavailable
from appliance import inference
from appliance.inference import hailo as hailo_backend

CONFIG = Path(os.environ.get("APPLIANCE_CONFIG", "/etc/appliance/appliance.toml"))
APPLIANCE = Path(sys.executable).with_name("appliance")
FRAMES = 30


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _need_camera() -> None:
    if not _has("picamera2"):
        pytest.skip("picamera2 is not installed (not a Raspberry Pi OS image): apt install python3-picamera2")
    from picamera2 import Picamera2  # noqa: PLC0415 - device-only SDK

    if not Picamera2.global_camera_info():
        pytest.skip("picamera2 is installed but libcamera sees no camera (`rpicam-hello --list-cameras`)")


def _need_hailo_sdk() -> None:
    if not _has("hailo_platform"):
        pytest.skip("hailo_platform (HailoRT) is not installed: apt install hailo-all on the Pi 5")


def _grab(n: int) -> list:
    source = capture.open_source(capture.capture_module("picamera2").Settings())
    frames = []
    with source:
        for frame in source.frames():
            frames.append(frame)
            if len(frames) == n:
                source.stop()
    return frames


# --- camera -------------------------------------------------------------------------------------

def test_pi_camera_delivers_frames_with_increasing_seq_and_monotonic_time():
    _need_camera()
    frames = _grab(FRAMES)
    assert [f.seq for f in frames] == list(range(FRAMES))
    gaps = np.diff([f.t_mono for f in frames])
    assert (gaps > 0).all(), "frame times must strictly increase"
    assert 1 / 120 < statistics.median(gaps) < 1 / 5, f"median frame gap {statistics.median(gaps):.3f} s"
    image = frames[-1].image
    assert image.shape == (1080, 1920, 3) and image.dtype == np.uint8
    assert image.std() > 1.0, "the frame is flat: lens cap on, or no light?"
    lores = frames[-1].lores  # the detector's stream, from the same request as the main image
    assert lores is not None and lores.shape == (360, 640, 3) and frames[-1].lores_scale == 3.0
    sensor = [f.sensor_ts_ns for f in frames]
    assert all(isinstance(t, int) for t in sensor) and (np.diff(sensor) > 0).all()


def test_pi_camera_is_released_so_it_can_be_opened_again():
    _need_camera()
    _grab(2)
    assert len(_grab(2)) == 2  # would fail with "busy" if the first session kept the camera


def test_test_card_in_view_is_detected():
    _need_camera()
    if os.environ.get("APPLIANCE_TEST_CARD_IN_VIEW") != "1":
        pytest.skip("hold the printed test card ~2 m in front of the camera and set APPLIANCE_TEST_CARD_IN_VIEW=1")
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    cfg = load_config(CONFIG) if CONFIG.exists() else Config()
    try:
        engine = FaceEngine.from_config(cfg)
    except BackendUnavailable:
        # this test is about the camera and the detector; the NPU has its own tests below
        cpu = inference.settings_for("litert", cfg.inference)
        engine = FaceEngine.from_config(cfg.model_copy(update={"inference": cpu}))
    faces = [f for frame in _grab(5) for f in engine.faces(frame.image)]
    assert faces, "no face found on the test card in 5 frames: check focus, light and distance"


# --- Hailo NPU ----------------------------------------------------------------------------------

def test_hailo_backend_probe_is_available():
    _need_hailo_sdk()
    assert hailo_backend.probe() is None, hailo_backend.probe()


def test_hailo_versions_chip_and_pinned_hefs_pass_the_preflight():
    _need_hailo_sdk()
    settings = hailo_backend.Settings()
    if CONFIG.exists():
        cfg = load_config(CONFIG)
        settings = cfg.inference if isinstance(cfg.inference, hailo_backend.Settings) else settings
    assert hailo_backend.preflight(settings) is None, hailo_backend.preflight(settings)


def test_hailo_device_scan_finds_the_card():
    _need_hailo_sdk()
    from hailo_platform import Device  # noqa: PLC0415 - device-only SDK

    device_ids = Device.scan()
    assert len(device_ids) >= 1, "HailoRT sees no device: is hailo_pci loaded (`lsmod | grep hailo`)?"


def test_hailortcli_identifies_a_hailo8_family_device():
    _need_hailo_sdk()
    tool = shutil.which("hailortcli")
    if tool is None:
        pytest.skip("hailortcli is not on PATH (it ships with the hailort Debian package)")
    proc = subprocess.run([tool, "fw-control", "identify"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HAILO8" in proc.stdout.upper().replace("-", ""), proc.stdout


# --- the installed unit -------------------------------------------------------------------------

def test_backends_command_reports_the_device_backends_available():
    if not APPLIANCE.exists():
        pytest.skip(f"appliance console script not found beside {sys.executable}")
    if not (_has("picamera2") or _has("hailo_platform")):
        pytest.skip("neither picamera2 nor hailo_platform is installed: not a Pi 5 image")
    out = subprocess.run([str(APPLIANCE), "backends"], capture_output=True, text=True, timeout=120).stdout
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()}
    if _has("picamera2"):
        assert rows[("capture", "picamera2")].endswith("available"), rows[("capture", "picamera2")]
    if _has("hailo_platform"):
        assert rows[("inference", "hailo")].endswith("available"), rows[("inference", "hailo")]


def test_installed_config_validates_and_its_models_verify():
    if not CONFIG.exists():
        pytest.skip(f"{CONFIG} does not exist: not a provisioned unit (set APPLIANCE_CONFIG)")
    cfg = load_config(CONFIG)
    proc = subprocess.run([str(APPLIANCE), "models", "verify", "--models-dir", cfg.inference.models_dir],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


# --- 1:N match ----------------------------------------------------------------------------------

def test_int8_match_screen_runs_on_the_cores_dot_product_instructions():
    """The watchlist screen (appliance/pipeline/match.py) is fast only with int8 dot-product SIMD:
    the Pi 5's Cortex-A76 has it (NEON SDOT), so NumKong must report it there."""
    import platform  # noqa: PLC0415

    import numkong  # noqa: PLC0415

    if platform.machine() != "aarch64":
        pytest.skip(f"not an Arm board ({platform.machine()}): the Pi 5 and Jetson checks only")
    caps = numkong.get_capabilities()
    assert caps.get("neonsdot") or caps.get("svesdot"), f"no int8 dot-product SIMD reported: {caps}"
