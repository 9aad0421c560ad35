"""The systemd units in systemd/: hardening, entry point, restart policy, and `systemd-analyze verify`.

The unit files are parsed with configparser (keys that repeat, such as DeviceAllow,
are collected into a list). Where systemd-analyze exists, the unit is also verified
inside a throw-away root that holds the system's own units and a stand-in for the
installed `appliance` executable, so the check does not depend on this machine's layout.
"""
from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.errors import (BackendUnavailable, CaptureError, ConfigError, KeyStoreError,
                              ModelError, UsageError)

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"
PIPELINE_UNIT = UNITS / "appliance.service"
CONFIG = "/etc/appliance/appliance.toml"
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
# systemd-python's daemon.notify(...) or a libsystemd sd_notify(...) call, or the READY message
NOTIFY_CALL = re.compile(r"(sd_notify|daemon\.notify)\s*\(|READY=1")


class _RepeatedKeys(dict):
    """configparser section storage that keeps every value of a repeated key."""

    def __setitem__(self, key, value):
        if isinstance(value, list) and key in self and isinstance(self[key], list):
            super().__getitem__(key).extend(value)
        else:
            super().__setitem__(key, value)


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Unit file -> {section: {key: [values in order]}} (case kept, empty values kept)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, dict_type=_RepeatedKeys,
                                       delimiters=("=",), comment_prefixes=("#", ";"),
                                       empty_lines_in_values=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return {name: {key: parser[name][key].split("\n") for key in parser[name]}
            for name in parser.sections()}


def one(unit: dict, section: str, key: str) -> str:
    """The single value of ``key``; fails if it is missing or set more than once."""
    values = unit[section].get(key)
    assert values is not None, f"[{section}] {key} is not set"
    assert len(values) == 1, f"[{section}] {key} is set {len(values)} times: {values}"
    return values[0]


def words(unit: dict, section: str, key: str) -> list[str]:
    """All space-separated words of every value of ``key``."""
    return [w for value in unit[section].get(key, []) for w in value.split()]


@pytest.fixture(scope="module")
def unit() -> dict:
    return parse_unit(PIPELINE_UNIT)


def test_every_unit_file_parses_with_the_three_sections():
    files = sorted(UNITS.glob("*.service"))
    assert PIPELINE_UNIT in files
    for path in files:
        parsed = parse_unit(path)
        assert {"Unit", "Service", "Install"} <= set(parsed), path.name


def test_execstart_runs_the_appliance_entry_point_with_the_installed_config(unit):
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).name == "appliance" and Path(argv[0]).is_absolute()
    assert argv[1:] == ["run", "--config", CONFIG]
    args = build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "cmd_run" and args.config == CONFIG


def test_config_is_validated_before_start(unit):
    argv = shlex.split(one(unit, "Service", "ExecStartPre"))
    assert argv[1:] == ["validate-config", CONFIG]
    assert build_parser().parse_args(argv[1:]).func.__name__ == "cmd_validate_config"


def test_every_unit_starts_a_command_the_cli_has():
    """No placeholder unit for something not built yet (e.g. a console service)."""
    parser = build_parser()
    for path in UNITS.glob("*.service"):
        argv = shlex.split(one(parse_unit(path), "Service", "ExecStart"))
        assert Path(argv[0]).name == "appliance", path.name
        parser.parse_args(argv[1:])  # SystemExit (a failure) if the command does not exist


@pytest.mark.parametrize("key, expected", [
    ("ProtectSystem", "strict"),
    ("ReadWritePaths", "/var/lib/appliance"),
    ("PrivateTmp", "yes"),
    ("NoNewPrivileges", "yes"),
    ("ProtectHome", "yes"),
    ("User", "appliance"),
    ("StateDirectory", "appliance"),
    ("DevicePolicy", "closed"),
    ("IPAddressDeny", "any"),
    ("IPAddressAllow", "localhost"),
    ("Restart", "on-failure"),
    ("CapabilityBoundingSet", ""),
])
def test_hardening_key(unit, key, expected):
    assert one(unit, "Service", key) == expected


def test_only_unix_and_ip_sockets(unit):
    assert sorted(words(unit, "Service", "RestrictAddressFamilies")) == ["AF_INET", "AF_INET6", "AF_UNIX"]


def test_devices_are_cameras_and_the_npu_only(unit):
    allowed = [value.split()[0] for value in unit["Service"]["DeviceAllow"]]
    assert "char-video4linux" in allowed  # /dev/video* (a path glob is not valid DeviceAllow syntax)
    assert "/dev/hailo0" in allowed
    assert all(a.startswith("char-") or a.startswith("/dev/") for a in allowed)
    assert not any(a.startswith("block-") for a in allowed)


def test_restart_has_a_delay_and_a_start_limit(unit):
    delay = one(unit, "Service", "RestartSec")
    assert delay.endswith("s") and float(delay[:-1]) >= 1
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 1
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) >= 60


def test_errors_a_restart_cannot_fix_are_not_retried_but_a_lost_camera_is(unit):
    codes = {int(c) for c in words(unit, "Service", "RestartPreventExitStatus")}
    assert codes == {UsageError.exit_code, ConfigError.exit_code, ModelError.exit_code,
                     BackendUnavailable.exit_code, KeyStoreError.exit_code}
    assert CaptureError.exit_code not in codes


def test_service_type_matches_whether_the_code_notifies_systemd(unit):
    """Type=notify (and a watchdog) only once the code calls sd_notify; Type=simple until then."""
    notifies = any(NOTIFY_CALL.search(p.read_text()) for p in (REPO / "appliance").rglob("*.py"))
    kind = one(unit, "Service", "Type")
    if notifies:
        assert kind == "notify"
    else:
        assert kind == "simple"
        assert "WatchdogSec" not in unit["Service"], "a watchdog without sd_notify would kill the unit"


def _system_units() -> Path | None:
    return next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)


def _verify_root(tmp_path: Path, unit: dict, system_units: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(PIPELINE_UNIT, root / "etc/systemd/system" / PIPELINE_UNIT.name)
    exe = root / shlex.split(one(unit, "Service", "ExecStart"))[0].lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return root


def test_systemd_analyze_verify_accepts_the_unit(tmp_path, unit):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here; the configparser checks above still ran")
    system_units = _system_units()
    if system_units is None:
        pytest.skip("no systemd unit directory with sysinit.target here to verify against")
    root = _verify_root(tmp_path, unit, system_units)
    proc = subprocess.run([tool, "verify", "--man=no", f"--root={root}",
                           f"/etc/systemd/system/{PIPELINE_UNIT.name}"],
                          capture_output=True, text=True, timeout=60)
    if "unrecognized option" in proc.stderr:
        pytest.skip(f"this systemd-analyze is too old for --root: {proc.stderr.strip()}")
    complaints = [line for line in proc.stderr.splitlines() if PIPELINE_UNIT.name in line]
    assert proc.returncode == 0, proc.stderr
    assert complaints == [], "systemd-analyze warned about the unit:\n" + "\n".join(complaints)
