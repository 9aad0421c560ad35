"""Hostile and broken inputs around the unit: each gets its documented exit code, never a crash or a hang.

- an unauthenticated bundle manifest of any shape: WatchlistError (exit 9), audited as refused;
- config values that validate but would crash at run time: refused by `validate-config` (exit 3);
- key files that are empty, truncated, a directory, a FIFO or a symlink, and a key folder that is
  open to others or a symlink: KeyStoreError (exit 8), never a hang;
- decompression bombs: refused from the header, before any decoder runs.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib

import cv2
import numpy as np
import pytest

from appliance import imagefile
from appliance.audit import events
from appliance.audit.log import connect, iter_entries
from appliance.capture.replay import ReplaySource
from appliance.cli import main
from appliance.errors import CaptureError, ConfigError, InputError, KeyStoreError, WatchlistError
from appliance.keystore.file import AGE_FILE, SIGNING_FILE, FileKeyStore
from appliance.vision.engine import decode_image
from appliance.watchlist import container
from lfr_tools.backoffice.authority import init_authority
from conftest import REPO, provision, run_cli
from watchlist_helpers import make_unit, seal, synthetic_entries

# -- unauthenticated manifests --------------------------------------------------------------


@pytest.fixture(scope="module")
def genuine_manifest(tmp_path_factory) -> bytes:
    unit = make_unit(tmp_path_factory.mktemp("manifest"))
    data = seal(unit, unit.authority_dir, synthetic_entries(2))
    (length,) = container.HEADER.unpack_from(data, len(container.MAGIC))
    return data[12:12 + length]


MANIFESTS = {
    "5000-digit integer": lambda m: m.replace(b'"bundle_version":1', b'"bundle_version":' + b"9" * 5000),
    "4000-digit integer": lambda m: m.replace(b'"bundle_version":1', b'"bundle_version":' + b"9" * 4000),
    "deep nesting": lambda m: b'{"a":' + b"[" * 20000 + b"]" * 20000 + b"}",
    "lone surrogate": lambda m: m.replace(b'"OP-TEST-1"', b'"OP-\\udcff"'),
    "NaN": lambda m: m.replace(b'"entry_count":2', b'"entry_count":NaN'),
    "duplicate key": lambda m: m.replace(b"{", b'{"entry_count":3,', 1),
    "1e999": lambda m: m.replace(b'"entry_count":2', b'"entry_count":1e999'),
    "deployment id with a trailing newline": lambda m: m.replace(b'"OP-TEST-1"', b'"OP-TEST-1\\n"'),
    "huge entry count": lambda m: m.replace(b'"entry_count":2', b'"entry_count":99999999999'),
}


def _bundle_with(manifest: bytes) -> bytes:
    """A container around ``manifest`` (the signature is never reached: the manifest fails first)."""
    return container.pack(manifest, bytes(64), b"age-encryption.org/v1\n" + bytes(200))


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_unauthenticated_manifest_edge_cases_are_refused_and_audited(genuine_manifest, tmp_path, case):
    unit = make_unit(tmp_path)
    bundle = tmp_path / "bad.lfrwl"
    bundle.write_bytes(_bundle_with(MANIFESTS[case](genuine_manifest)))
    dep = unit.deployment()
    with pytest.raises(WatchlistError, match="manifest refused") as info:
        dep.start(bundle, "Test Street")
    assert info.value.exit_code == 9 and info.value.fix
    assert info.value.message.isascii(), "untrusted text is never echoed raw"
    assert unit.event_types() == ["watchlist_refused"] and dep.records.active() is None


@pytest.mark.parametrize("case", ["5000-digit integer", "deep nesting", "lone surrogate"])
def test_deployment_start_cli_exits_9_and_audits(genuine_manifest, tmp_path, case):
    data = provision(tmp_path / "data")
    trust = init_authority(tmp_path / "auth")
    cfg = tmp_path / "unit.toml"
    cfg.write_text(f'[unit]\nid = "van-rob-01"\ndata_dir = "{data}"\n'
                   f'[inference]\nmodels_dir = "{REPO / "models" / "cache"}"\n'
                   f'[watchlist]\ntrusted_authorities = ["{trust}"]\n')
    bundle = tmp_path / "bad.lfrwl"
    bundle.write_bytes(_bundle_with(MANIFESTS[case](genuine_manifest)))
    done = run_cli("deployment", "start", "--bundle", str(bundle), "--location", "X", "--config", str(cfg))
    assert done.returncode == 9 and "manifest refused" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    db = connect(data / "audit.db", readonly=True)
    try:
        logged = [events.decode_entry(body) for _s, body, _l in iter_entries(db)]
    finally:
        db.conn.close()
    assert [e["type"] for e in logged][-1] == "watchlist_refused"
    assert logged[-1]["payload"]["reason"].startswith("manifest refused")


# -- config values that validate but crash at run time ----------------------------------------


def _validate(tmp_path, capsys, body: str) -> tuple[int, str]:
    path = tmp_path / "unit.toml"
    path.write_text(body)
    code = main(["validate-config", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["a file", "/dev/null", "under a file", "too long", "NUL", "empty",
                                  "long component"])
def test_unusable_data_dir_is_refused_by_validate_config(tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    value = {"a file": str(tmp_path / "afile"), "/dev/null": "/dev/null", "under a file": f"{tmp_path}/afile/d",
             "too long": "/tmp/" + "a/" * 600, "NUL": "var\\u0000x", "empty": "",
             "long component": "/tmp/" + "b" * 300}[case]
    code, err = _validate(tmp_path, capsys, f'[unit]\ndata_dir = "{value}"\n')
    assert code == ConfigError.exit_code and "unit.data_dir" in err, err


def test_a_detector_that_searches_nothing_is_refused(tmp_path, capsys):
    code, err = _validate(tmp_path, capsys, "[detect]\ntile_sizes = []\nwhole_frame = false\n")
    assert code == ConfigError.exit_code and "nothing would be searched" in err, err


def test_the_new_config_checks_leave_usable_values_alone(tmp_path, capsys):
    code, err = _validate(tmp_path, capsys, f'[unit]\ndata_dir = "{tmp_path}/new/dir"\n'
                                            "[detect]\ntile_sizes = []\nwhole_frame = true\n")
    assert code == 0, err


# -- key files and the key folder ----------------------------------------------------------------


def _damage(keys, case: str) -> None:
    signing, age = keys / SIGNING_FILE, keys / AGE_FILE
    if case == "empty signing key":
        signing.write_bytes(b"")
    elif case == "truncated signing key":
        signing.write_bytes(signing.read_bytes()[:40])
    elif case == "signing key is a directory":
        signing.unlink()
        signing.mkdir(mode=0o700)
    elif case == "signing key is a FIFO":
        signing.unlink()
        os.mkfifo(signing, 0o600)
    elif case == "age key is a FIFO":
        age.unlink()
        os.mkfifo(age, 0o600)
    elif case == "empty age key":
        age.write_bytes(b"")
    elif case == "truncated age key":
        age.write_bytes(age.read_bytes()[:30])
    elif case == "age key not UTF-8":
        age.write_bytes(b"\xff\xfe" * 20)
    elif case == "signing key is a symlink":
        target = keys.parent / "elsewhere.pem"
        target.write_bytes(signing.read_bytes())
        target.chmod(0o600)
        signing.unlink()
        signing.symlink_to(target)
    elif case == "key folder 0755":
        keys.chmod(0o755)
    elif case == "key folder is a symlink":
        real = keys.parent / "real-keys"
        keys.rename(real)
        keys.symlink_to(real)


KEY_CASES = ["empty signing key", "truncated signing key", "signing key is a directory", "signing key is a FIFO",
             "age key is a FIFO", "empty age key", "truncated age key", "age key not UTF-8",
             "signing key is a symlink", "key folder 0755", "key folder is a symlink"]


@pytest.mark.parametrize("case", KEY_CASES)
def test_broken_keys_give_exit_8_never_a_hang(tmp_path, case):
    data = provision(tmp_path / "data")
    _damage(data / "keys", case)
    cfg = tmp_path / "unit.toml"
    cfg.write_text(f'[unit]\ndata_dir = "{data}"\n')
    done = run_cli("keys", "show", "--config", str(cfg), timeout=20)
    assert done.returncode == KeyStoreError.exit_code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "fix:" in done.stderr


def test_a_deployment_key_that_is_a_fifo_is_refused_and_destroyable(tmp_path):
    store = FileKeyStore(tmp_path / "keys")
    store.init()
    store.create_deployment_identity("OP-1-v1")
    path = tmp_path / "keys" / "deployments" / "OP-1-v1.key"
    path.unlink()
    os.mkfifo(path, 0o600)
    for call, expect in ((store.deployment_identity, KeyStoreError), (store.destroy_deployment_identity, None)):
        outcome = _within(10, call, "OP-1-v1")
        assert (isinstance(outcome, KeyStoreError) and "not a regular file" in outcome.message) if expect \
            else outcome is True, outcome
    assert not path.exists()


def _within(seconds: float, call, *args):
    """``call(*args)``'s result or exception; a call still blocked after ``seconds`` fails the test (a hang)."""
    box = []

    def run():
        try:
            box.append(call(*args))
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"{call.__name__} still blocked after {seconds} s (a FIFO opened without O_NONBLOCK)"
    return box[0]


# -- decompression bombs -------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG of ``width`` x ``height`` grey pixels: a few kilobytes that decode to gigabytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _jpeg_bomb(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = buf.tobytes()
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


@pytest.fixture()
def no_decoder(monkeypatch):
    """Any decode attempt fails the test: a bomb must be refused from its header alone."""
    def boom(*_args, **_kwargs):
        raise AssertionError("a decoder was called on a decompression bomb")
    monkeypatch.setattr(cv2, "imdecode", boom)
    monkeypatch.setattr(cv2, "imread", boom)


@pytest.mark.parametrize("bomb", [_png_bomb(20000, 20000), _jpeg_bomb(30000, 30000)], ids=["png", "jpeg"])
def test_decode_image_refuses_a_bomb_before_decoding(tmp_path, no_decoder, bomb):
    path = tmp_path / "bomb.img"
    path.write_bytes(bomb)
    with pytest.raises(InputError, match="over the limit"):
        decode_image(path)


def test_replay_refuses_a_bomb_frame_before_decoding(tmp_path, no_decoder):
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "000000.png").write_bytes(_png_bomb(20000, 20000))
    with ReplaySource(clip, 0.0, False, "cam0") as source, pytest.raises(CaptureError, match="over the limit"):
        next(source.frames())


def test_images_within_the_limit_and_every_format_still_decode(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8)
    for ext in (".jpg", ".png", ".bmp", ".webp"):
        path = tmp_path / f"ok{ext}"
        cv2.imwrite(str(path), image)
        assert decode_image(path).shape == (120, 160, 3)
    for odd in (tmp_path / "fifo", tmp_path):
        if odd.name == "fifo":
            os.mkfifo(odd)
        with pytest.raises(InputError):
            decode_image(odd)
    assert imagefile.MAX_IMAGE_PIXELS >= 7680 * 4320
