"""Bad input gets a clear message naming the fix and a documented exit code, never a traceback."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import CaptureError, ConfigError, InputError, ModelError
from appliance.modelstore import DEFAULT_MODELS_DIR
from conftest import provision, run_cli


def _config(tmp_path: Path, body: str) -> Path:
    provision(tmp_path / "data")
    path = tmp_path / "appliance.toml"
    path.write_text(f'[unit]\ndata_dir = "{tmp_path / "data"}"\n' + body)
    return path


def _assert_clean_failure(result, code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "fix:" in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_unreadable_image(tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"not a jpeg at all")
    _assert_clean_failure(run_cli("detect", str(bad)), InputError.exit_code, "cannot read image")


def test_empty_image_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    _assert_clean_failure(run_cli("detect", str(empty)), InputError.exit_code, "cannot read image")


def test_unreadable_video(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00garbage" * 100)
    cfg = _config(tmp_path, f'[capture]\nsource = "{video}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(cfg)), CaptureError.exit_code, "clip.mp4")


def test_missing_replay_source(tmp_path):
    cfg = _config(tmp_path, f'[capture]\nsource = "{tmp_path / "nowhere"}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(cfg)), CaptureError.exit_code, "does not exist")


def test_broken_frame_in_a_replay_folder(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    cv2.imwrite(str(clip / "000000.jpg"), np.full((360, 640, 3), 90, np.uint8))
    (clip / "000001.jpg").write_bytes(b"truncated")
    cfg = _config(tmp_path, f'[capture]\nsource = "{clip}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(cfg)), CaptureError.exit_code, "000001.jpg")


def test_empty_replay_folder(tmp_path):
    (tmp_path / "clip").mkdir()
    cfg = _config(tmp_path, f'[capture]\nsource = "{tmp_path / "clip"}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(cfg)), CaptureError.exit_code, "holds no images")


def test_grayscale_and_tiny_frames(engine, lfw, tmp_path):
    photo = cv2.imread(str(sorted(next(p for p in sorted(lfw.iterdir()) if p.is_dir()).glob("*.jpg"))[0]))
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    assert len(engine.faces(gray)) == 1, "a grayscale frame must still be processed"
    with pytest.raises(InputError, match="empty"):
        engine.faces(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError, match="empty"):
        engine.faces(np.zeros((4, 4), np.uint8))


def test_grayscale_replay_runs(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / f"{i:06d}.png"), np.full((240, 320), 100 + i, np.uint8))
    cfg = _config(tmp_path, f'[capture]\nsource = "{clip}"\n')
    result = run_cli("run", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert '"frames": 3' in result.stderr


def _models_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS_DIR, dest)
    return dest


def test_model_with_wrong_hash(tmp_path):
    models = _models_copy(tmp_path)
    weights = models / "face_detection_full_range.tflite"
    data = bytearray(weights.read_bytes())
    data[5000] ^= 0xFF
    weights.write_bytes(bytes(data))
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    cfg = _config(tmp_path, f'[inference]\nbackend = "litert"\nmodels_dir = "{models}"\n')
    _assert_clean_failure(run_cli("detect", str(image), "--config", str(cfg)), ModelError.exit_code,
                          "SHA-256", "make models")


def test_missing_model(tmp_path):
    models = _models_copy(tmp_path)
    (models / "MobileFaceNet.tflite").unlink()
    cfg = _config(tmp_path, f'[inference]\nbackend = "litert"\nmodels_dir = "{models}"\n'
                            f'[capture]\nsource = "{tmp_path}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(cfg)), ModelError.exit_code, "missing", "make models")


@pytest.mark.parametrize("body, key, reason", [
    ("[match]\nthreshold = 0.9\nfoo = 1\n", "match.foo", "unknown key"),
    ("[detect]\nnms_iou = 'high'\n", "detect.nms_iou", "valid number"),
    ("[quality]\nmin_face_px = 4\n", "quality.min_face_px", "greater than or equal to 8"),
    ("[match]\nthreshold = 0.2\n", "match", "below the model's floor"),
    ("[capture]\nbackend = 'webcam'\n", "capture.backend", "'replay', 'opencv' or 'picamera2'"),
    ("[unit]\nid = 'Van 1'\n", "unit.id", "should match pattern"),
])
def test_invalid_config_names_file_key_and_reason(tmp_path, body, key, reason):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    result = run_cli("validate-config", str(path))
    _assert_clean_failure(result, ConfigError.exit_code, str(path))
    assert f"key '{key}'" in result.stderr and reason in result.stderr, result.stderr


def test_example_config_is_valid():
    result = run_cli("validate-config", "deploy/appliance.example.toml")
    assert result.returncode == 0 and "OK" in result.stdout


def test_every_command_has_help():
    from appliance.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.format_help().strip(), name
        assert sub._choices_actions and any(c.dest == name and c.help for c in sub._choices_actions), name


def test_run_without_keys_names_the_fix(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text(f'[unit]\ndata_dir = "{tmp_path / "data"}"\n[capture]\nsource = "{tmp_path}"\n')
    _assert_clean_failure(run_cli("run", "--config", str(path)), 8, "appliance keys init")


def test_demo_watchlist_is_refused_by_validate_config_and_run(tmp_path):
    """No config key bypasses the deployment gate (G2, G10): an unsigned enrolment is refused
    before anything is opened, even beside a trusted authority."""
    data = tmp_path / "data"
    config = tmp_path / "unit.toml"
    config.write_text(f'[unit]\ndata_dir = "{data}"\n[capture]\nsource = "{tmp_path}"\n'
                      '[watchlist]\ntrusted_authorities = ["ed25519:' + "A" * 43 + '="]\n'
                      f'[demo_watchlist.enrol]\nANYONE = "{tmp_path / "photo.jpg"}"\n')
    for command in (["validate-config", str(config)], ["run", "--config", str(config)]):
        result = run_cli(*command)
        assert result.returncode == 3, result.stderr
        assert "[demo_watchlist] is not a unit setting" in result.stderr and "deployment start" in result.stderr
    assert not data.exists(), "nothing was opened: no audit log, no keys, no outbox"
