"""Contract tests for the vendor SDKs that are absent here (HailoRT, picamera2), and the board profiles.

The SDK import lives in its backend file only (ARCHITECTURE.md, hardware abstraction):
a missing SDK must show up as "unavailable: <reason>" and choosing the backend must be
a BackendUnavailable naming that reason, never a NameError or ImportError. The SDKs
are made absent deterministically by putting None in sys.modules (Python then raises
ImportError on import), so these tests mean the same on a developer's Pi.

The backends' own logic is driven through doubles of exactly the SDK surface they use:
tests/test_picamera2_backend.py (tests/fakes/picamera2.py) and tests/test_hailo_backend.py
(tests/fakes/hailo_platform.py). The real camera and NPU are tested on the device by
`make hw-test` and hw/tests/test_on_device.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from appliance import capture, inference
from appliance.capture import picamera2 as pi_backend
from appliance.cli import main
from appliance.config import load_config
from appliance.errors import BackendUnavailable, ModelError
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
        inference.choose(hailo_backend.Settings())
    assert hailo_backend.probe() in err.value.message
    assert err.value.fix and err.value.exit_code == 6


def test_choosing_picamera2_is_backend_unavailable_with_the_reason(no_sdks):
    with pytest.raises(BackendUnavailable) as err:
        capture.open_source(pi_backend.Settings())
    assert pi_backend.probe() in err.value.message
    assert err.value.fix and err.value.exit_code == 6


def test_auto_passes_over_an_absent_npu(no_sdks):
    chosen, settings = inference.choose(inference.AutoSettings())
    assert chosen.KEY in ("litert", "onnx") and chosen.probe() is None
    assert settings.backend == chosen.KEY


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
    module, settings = inference.choose(hailo_backend.Settings())
    with pytest.raises(ModelError) as err:
        module.open_model("mobilefacenet", settings)
    assert "no Hailo HEF 'mobilefacenet-hailo8l'" in err.value.message and "litert" in err.value.fix
    # the full NPU contract (versions, chip, pins, requests) is tests/test_hailo_backend.py


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


def test_running_the_hailo_profile_here_fails_cleanly_naming_what_is_missing(tmp_path):
    """The profile allows the NPU to fall back to LiteRT, but a van unit without its Pi camera must
    not start: the error names the missing camera SDK and the fix, without a traceback."""
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
    assert "picamera2" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
