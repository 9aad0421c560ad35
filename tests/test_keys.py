"""Unit keys (`appliance keys`), authority keys (`appliance authority`) and per-deployment keys."""
from __future__ import annotations

import stat

import pyrage
import pytest

from appliance.authority import key_fingerprint, parse_public, public_string
from lfr_tools.backoffice.authority import init_authority, load_authority
from appliance.errors import KeyStoreError
from appliance.keystore.file import FileKeyStore
from appliance.watchlist.crypto import recipient_fingerprint

from conftest import run_cli


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def unit_config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "unit.toml"
    path.write_text(f'[unit]\nid = "van-test-02"\ndata_dir = "{tmp_path / "data"}"\n{extra}')
    return str(path)


def test_keys_init_and_show(tmp_path):
    cfg = unit_config(tmp_path)
    done = run_cli("keys", "init", "--config", cfg)
    assert done.returncode == 0, done.stderr
    keys = tmp_path / "data" / "keys"
    assert mode(keys) == 0o700
    assert {p.name: mode(p) for p in keys.iterdir()} == {"unit-ed25519.pem": 0o600, "unit-age.key": 0o600}
    store = FileKeyStore(keys)
    shown = run_cli("keys", "show", "--config", cfg).stdout
    assert store.age_recipient() in shown and recipient_fingerprint(store.age_recipient()) in shown
    assert "van-test-02" in shown
    again = run_cli("keys", "init", "--config", cfg)
    assert again.returncode == 8 and "already exist" in again.stderr and "fix:" in again.stderr


def test_keys_show_without_keys_names_the_fix(tmp_path):
    done = run_cli("keys", "show", "--config", unit_config(tmp_path))
    assert done.returncode == 8 and "appliance keys init" in done.stderr and "Traceback" not in done.stderr


def test_key_readable_by_others_is_refused(tmp_path):
    store = FileKeyStore(tmp_path / "keys")
    store.init()
    (tmp_path / "keys" / "unit-age.key").chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        store.age_identity()


def test_authority_init_show_and_trust_line(tmp_path):
    done = run_cli("authority", "init", "--dir", str(tmp_path / "auth"))
    assert done.returncode == 0, done.stderr
    key = load_authority(tmp_path / "auth")
    line = public_string(key.public_key())
    assert line in done.stdout
    assert mode(tmp_path / "auth" / "authority-ed25519.pem") == 0o600
    shown = run_cli("authority", "show", "--dir", str(tmp_path / "auth")).stdout
    assert line in shown and key_fingerprint(key.public_key()) in shown
    assert run_cli("authority", "init", "--dir", str(tmp_path / "auth")).returncode == 8
    cfg = unit_config(tmp_path, f'[watchlist]\ntrusted_authorities = ["{line}"]\n')
    assert run_cli("validate-config", cfg).returncode == 0


def test_parse_public_refuses_bad_lines():
    with pytest.raises(KeyStoreError, match="does not start with"):
        parse_public("ssh-ed25519 AAAA")
    with pytest.raises(KeyStoreError, match="32 bytes"):
        parse_public("ed25519:AAAA")


def test_authority_key_round_trips(tmp_path):
    text = init_authority(tmp_path / "a")
    assert key_fingerprint(parse_public(text)) == key_fingerprint(load_authority(tmp_path / "a").public_key())


def test_deployment_keys_are_created_0600_and_destroyed(tmp_path):
    store = FileKeyStore(tmp_path / "keys")
    store.init()
    recipient = store.create_deployment_identity("OP-1-v1")
    path = tmp_path / "keys" / "deployments" / "OP-1-v1.key"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    identity = store.deployment_identity("OP-1-v1")
    assert str(pyrage.x25519.Identity.from_str(identity).to_public()) == recipient
    with pytest.raises(KeyStoreError, match="already exists"):
        store.create_deployment_identity("OP-1-v1")
    assert store.deployment_names() == ["OP-1-v1"]
    assert store.destroy_deployment_identity("OP-1-v1") is True
    assert not path.exists() and store.deployment_names() == []
    assert store.destroy_deployment_identity("OP-1-v1") is False
    with pytest.raises(KeyStoreError, match="not a valid deployment key name"):
        store.create_deployment_identity("../escape")
