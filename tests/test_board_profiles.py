"""Board profiles choose the backends; an unavailable backend falls back only as the profile allows,
and the fallback shows in the status and as an audit event (appliance.board.resolve_profile)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audit.events import validate_payload
from appliance.board import resolve_profile
from appliance.config import load_config
from appliance.errors import BackendUnavailable

HW = Path(__file__).resolve().parents[1] / "hw"
EXPECTED = {"rpi5-hailo8l": ("hailo", "picamera2", "litert"), "rpi5-hailo8": ("hailo", "picamera2", "litert"),
            "rpi5-cpu": ("litert", "picamera2", "none"), "jetson-orin": ("onnx", "opencv", "none"),
            "x86-dev": ("litert", "opencv", "none")}


def available(key, cfg):
    return None


def without(*keys):
    return lambda key, cfg: f"{key} is not here (test)" if key in keys else None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_profile_runs_its_own_backends_where_they_are_available(name):
    cfg = load_config(HW / f"{name}.toml")
    inference, capture, fallback = EXPECTED[name]
    assert cfg.board.profile == name and cfg.board.inference_fallback == fallback
    chosen = resolve_profile(cfg, available, available, device_exists=lambda p: True)
    assert (chosen.inference, chosen.capture, chosen.fallbacks, chosen.degraded) == (inference, capture, (), False)
    assert chosen.audit_events() == []


def test_the_npu_profile_falls_back_to_the_cpu_says_so_and_audits_it():
    cfg = load_config(HW / "rpi5-hailo8l.toml")
    chosen = resolve_profile(cfg, without("hailo"), available, device_exists=lambda p: True)
    assert chosen.inference == "litert" and chosen.capture == "picamera2" and chosen.degraded
    status = chosen.status()
    assert status["degraded"] and status["fallbacks"] == ["inference hailo unavailable, running litert: hailo is not here (test)"]
    [(event, payload)] = chosen.audit_events()
    assert event == "fault" and payload["kind"] == "backend_fallback" and "running litert" in payload["detail"]
    validate_payload(event, payload)  # the audit log's own schema accepts it
    running = chosen.config(cfg)  # what the unit builds its engine from
    assert running.inference.backend == "litert" and running.inference.models_dir == cfg.inference.models_dir
    assert running.capture == cfg.capture


def test_a_profile_without_fallback_refuses_to_start_naming_the_setting():
    cfg = load_config(HW / "rpi5-cpu.toml")
    with pytest.raises(BackendUnavailable) as err:
        resolve_profile(cfg, available, without("picamera2"))
    assert "capture backend 'picamera2' is unavailable" in err.value.message
    assert "[board] capture_fallback" in err.value.fix


def test_a_fallback_that_cannot_run_either_is_refused():
    cfg = load_config(HW / "rpi5-hailo8l.toml")
    with pytest.raises(BackendUnavailable, match="its fallback 'litert' too"):
        resolve_profile(cfg, without("hailo", "litert"), available, device_exists=lambda p: True)


def test_a_missing_device_node_is_reported_and_audited():
    cfg = load_config(HW / "rpi5-hailo8.toml")
    chosen = resolve_profile(cfg, available, available, device_exists=lambda p: p != Path("/dev/hailo0"))
    assert chosen.missing_devices == ("/dev/hailo0",) and chosen.degraded
    [(event, payload)] = chosen.audit_events()
    assert payload["kind"] == "other" and "/dev/hailo0" in payload["detail"]
    validate_payload(event, payload)


def test_here_the_hailo_profile_falls_back_for_inference_and_refuses_the_absent_camera():
    """With the real probes on this machine (no HailoRT, no picamera2)."""
    cfg = load_config(HW / "rpi5-hailo8l.toml")
    with pytest.raises(BackendUnavailable, match="picamera2 is not installed"):
        resolve_profile(cfg)
    replay = cfg.model_copy(update={"capture": cfg.capture.model_copy(update={"backend": "replay"})})
    chosen = resolve_profile(replay)
    assert chosen.inference == "litert" and "hailo_platform" in chosen.fallbacks[0].reason
