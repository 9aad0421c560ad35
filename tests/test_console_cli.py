"""`appliance console` commands: strict config, officers provisioned with PIN hashes only, the
console key created 0600 and printed in the form a unit pins."""
from __future__ import annotations

import sqlite3
import stat

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # each command is a fresh interpreter


def _config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "console.toml"
    path.write_text(f'[console]\nstate_dir = "{tmp_path / "state"}"\n{extra}')
    return str(path)


def test_unknown_key_and_bad_unit_key_are_named(tmp_path):
    bad = run_cli("console", "officers", "list", "--config", _config(tmp_path, "colour = 'dark'\n"))
    assert bad.returncode == 3 and "console.colour" in bad.stderr and "unknown key" in bad.stderr
    path = tmp_path / "units.toml"
    path.write_text('[[units]]\nid = "van-dev-01"\npublic_key = "ed25519:not-base64"\n')
    bad = run_cli("console", "officers", "list", "--config", str(path))
    assert bad.returncode == 3 and "units.0.public_key" in bad.stderr and "keys show" in bad.stderr


def test_officers_add_list_remove_with_hashes_only(tmp_path):
    config = _config(tmp_path)
    added = run_cli("console", "officers", "add", "PC-4411", "--pin-stdin", "--config", config, input="482915\n")
    assert added.returncode == 0, added.stderr
    assert run_cli("console", "officers", "add", "PC-4411", "--pin-stdin", "--config", config,
                   input="482915\n").returncode == 2
    short = run_cli("console", "officers", "add", "PC-1", "--pin-stdin", "--config", config, input="12\n")
    assert short.returncode == 2 and "6 to 12 digits" in short.stderr
    listed = run_cli("console", "officers", "list", "--config", config)
    assert '"officer_id": "PC-4411"' in listed.stdout and '"locked": false' in listed.stdout
    db = tmp_path / "state" / "officers.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    [(stored,)] = sqlite3.connect(db).execute("SELECT pin_hash FROM officers").fetchall()
    assert stored.startswith("$argon2id$") and "482915" not in stored
    assert run_cli("console", "officers", "remove", "PC-4411", "--config", config).returncode == 0
    assert run_cli("console", "officers", "remove", "PC-4411", "--config", config).returncode == 2


def test_console_key_init_show(tmp_path):
    config = _config(tmp_path)
    made = run_cli("console", "keys", "init", "--config", config)
    assert made.returncode == 0 and "console_keys = [\"ed25519:" in made.stdout
    key = tmp_path / "state" / "keys" / "console-ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert run_cli("console", "keys", "init", "--config", config).returncode == 8  # never replaced
    shown = run_cli("console", "keys", "show", "--config", config)
    assert shown.stdout.splitlines()[0] == made.stdout.splitlines()[1]
    key.chmod(0o644)
    loose = run_cli("console", "keys", "show", "--config", config)
    assert loose.returncode == 8 and "chmod 600" in loose.stderr


def test_console_without_config_names_the_fix():
    out = run_cli("console")
    assert out.returncode == 2 and "--config" in out.stderr


def test_serve_refuses_a_config_without_units_or_certificates(tmp_path):
    out = run_cli("console", "--config", _config(tmp_path))
    assert out.returncode == 3 and "no unit" in out.stderr and "[[units]]" in out.stderr
    units = '[[units]]\nid = "van-dev-01"\npublic_key = "ed25519:' + "A" * 43 + '="\n'
    cfg = tmp_path / "c2.toml"
    cfg.write_text(f'[console]\nstate_dir = "{tmp_path / "s2"}"\ntls_cert = "{tmp_path / "none.crt"}"\n{units}')
    out = run_cli("console", "--config", str(cfg))
    assert out.returncode == 3 and "tls_cert" in out.stderr and "make-van-certs.sh" in out.stderr
