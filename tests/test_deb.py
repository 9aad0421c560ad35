"""`make deb`: the package builds, holds the runtime only, installs into a throwaway root with its
users, folders, owners and modes, runs there without a registry, and `purge` leaves no key behind.

The install uses dpkg itself (--root with --force-script-chrootless, which runs the maintainer
scripts with $DPKG_ROOT set instead of in a chroot). .ci/run also installs the package for real
with apt on its own machine and purges it again.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from appliance import __version__
from appliance.modelstore import load_manifest
from conftest import REPO

pytestmark = pytest.mark.slow

UNIT_USER, CONSOLE_USER = "appliance", "appliance-console"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here (Debian package dpkg); .ci/run installs it")
    return path


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    _need("dpkg-deb")
    from lfr_tools.package.deb import build_deb, host_arch

    return build_deb(host_arch(), tmp_path_factory.mktemp("dist"), REPO / "models" / "cache")


def members(deb: Path) -> dict[str, tarfile.TarInfo]:
    """The data archive's members by path (dpkg-deb --fsys-tarfile)."""
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tar.getmembers()}


def test_package_name_and_control(deb):
    from lfr_tools.package.deb import host_arch

    assert deb.name == f"lfr-appliance_{__version__}_{host_arch()}.deb"
    fields = dict(line.split(": ", 1) for line in subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout.splitlines()
        if ": " in line and not line.startswith(" "))
    assert fields["Package"] == "lfr-appliance" and fields["Version"] == __version__
    depends = fields["Depends"]
    assert "python3 (>= 3.11)" in depends and "python3 (<< 3.12)" in depends
    assert "pip" not in depends  # nothing is installed from a registry on the unit


def test_contents_are_the_runtime_only_root_owned_with_sane_modes(deb):
    files = members(deb)
    site = "opt/appliance/venv/lib/python3.11/site-packages"
    assert f"{site}/appliance/cli.py" in files and f"{site}/appliance/data/selftest/reference-face.jpg" in files
    assert not any("/lfr_tools" in name or name.startswith(f"{site}/tests") for name in files)
    assert f"{site}/appliance/data/build-info.json" in files
    for name, member in files.items():
        assert (member.uname, member.gname) == ("root", "root"), name
        assert not member.mode & (stat.S_ISUID | stat.S_ISGID), name
        assert member.issym() or not member.mode & 0o022, f"{name} is writable by group or others"
    for unit in ("appliance.service", "appliance-console.service", "mosquitto.service.d/lfr.conf"):
        assert files[f"lib/systemd/system/{unit}"].mode & 0o777 == 0o644
    assert files["opt/appliance/venv/bin/appliance"].mode & 0o777 == 0o755
    assert files["usr/bin/appliance"].issym()
    for profile in (REPO / "hw").glob("*.toml"):
        assert f"usr/share/lfr-appliance/profiles/{profile.name}" in files


def test_weights_are_the_pinned_ones(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    cache = tmp_path / "opt/appliance/models/cache"
    import hashlib

    pinned = {spec.file: spec.sha256 for spec in load_manifest().values() if spec.sha256}
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.iterdir()
               if p.name in pinned}
    assert shipped and all(shipped[name] == pinned[name] for name in shipped)
    assert {"MobileFaceNet.tflite", "face_detection_full_range.tflite"} <= set(shipped)


# --- a throwaway root -------------------------------------------------------------------------

def throwaway_root(root: Path) -> Path:
    """A root with an empty dpkg database and the account files useradd --prefix edits."""
    for sub in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "var/lib", "usr/sbin"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("status", "available"):
        (root / "var/lib/dpkg" / name).touch()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nvideo:*::\n")
    if Path("/etc/login.defs").exists():
        shutil.copy("/etc/login.defs", root / "etc/login.defs")
    return root


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_need("dpkg"), f"--root={root}", "--force-script-chrootless", "--force-depends",
                           "--force-not-root", f"--log={root}/dpkg.log", *args],
                          capture_output=True, text=True, timeout=600)


def account(root: Path, table: str, name: str) -> int:
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} not in {table}")


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("installing with owners needs root (CI runs as root)")
    root = throwaway_root(tmp_path_factory.mktemp("throwaway") / "root")
    proc = dpkg(root, "--install", str(deb))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Next: sudo appliance provision" in proc.stdout + proc.stderr
    return root


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_install_creates_the_service_users_and_folders(installed):
    root = installed
    unit_uid, console_uid = account(root, "passwd", UNIT_USER), account(root, "passwd", CONSOLE_USER)
    unit_gid, console_gid = account(root, "group", UNIT_USER), account(root, "group", CONSOLE_USER)
    assert unit_uid != console_uid and unit_uid < 1000 and console_uid < 1000  # system users
    assert "appliance" in (root / "etc/group").read_text().split("video:x:44:")[1].splitlines()[0]
    passwd = (root / "etc/passwd").read_text()
    assert f"{UNIT_USER}:x:{unit_uid}:{unit_gid}:" in passwd and ":/usr/sbin/nologin" in passwd
    assert mode_owner(root / "var/lib/appliance") == (0o700, unit_uid, unit_gid)
    assert mode_owner(root / "var/lib/appliance-console") == (0o700, console_uid, console_gid)
    assert mode_owner(root / "etc/appliance") == (0o755, 0, 0)
    assert mode_owner(root / "etc/appliance/mqtt") == (0o750, 0, unit_gid)
    assert mode_owner(root / "etc/appliance-console") == (0o750, 0, console_gid)
    assert mode_owner(root / "etc/appliance-console/mqtt") == (0o750, 0, console_gid)
    assert mode_owner(root / "opt/appliance/venv/bin/appliance") == (0o755, 0, 0)
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: lfr-appliance\nStatus: install ok installed" in status


def test_the_installed_runtime_runs_offline_on_the_system_python(installed, tmp_path):
    """The package's own virtualenv, on /usr/bin/python3, verifies the weights and the reference face."""
    root = installed
    venv_python = root / "opt/appliance/venv/bin/python"
    assert os.readlink(venv_python) == "/usr/bin/python3.11"
    config = tmp_path / "unit.toml"
    config.write_text(f'[unit]\nid = "van-dev-01"\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[inference]\nbackend = "auto"\nmodels_dir = "{root}/opt/appliance/models/cache"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run([str(venv_python), "-m", "appliance", "selftest", "--json", "--config", str(config),
                           "--only", "models", "--only", "inference"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    doc = json.loads(proc.stdout)
    assert {row["check"]: row["outcome"] for row in doc["checks"]} == {"models": "PASS", "inference": "PASS"}, doc
    which = subprocess.run([str(venv_python), "-c", "import appliance, numpy; print(appliance.__file__)"],
                           capture_output=True, text=True, env=env, check=True, cwd=tmp_path).stdout
    assert which.startswith(str(root / "opt/appliance/venv/lib/python3.11/site-packages/appliance"))


def test_purge_says_it_destroys_the_keys_and_leaves_none(installed):
    root = installed
    keys = root / "var/lib/appliance/keys"
    keys.mkdir(mode=0o700)
    for name in ("unit-ed25519.pem", "unit-age.key"):
        (keys / name).write_text("SECRET")
    (root / "etc/appliance/mqtt/unit.key").write_text("SECRET")
    (root / "etc/appliance-console/mqtt/console.key").write_text("SECRET")
    (root / "var/lib/appliance-console/console-ed25519.pem").write_text("SECRET")
    (root / "etc/mosquitto/lfr").mkdir(parents=True)
    (root / "etc/mosquitto/lfr/broker.key").write_text("SECRET")
    removed = dpkg(root, "--remove", "lfr-appliance")
    assert removed.returncode == 0, removed.stderr
    assert (keys / "unit-ed25519.pem").exists(), "remove (without purge) must keep the unit's keys"
    purged = dpkg(root, "--purge", "lfr-appliance")
    assert purged.returncode == 0, purged.stderr
    assert "PURGE destroys this unit's keys" in purged.stderr
    said, done = purged.stderr.index("PURGE destroys"), purged.stderr.index("unit keys and state destroyed")
    assert said < done
    left = [p for p in root.rglob("*") if p.is_file() and (p.suffix in (".key", ".pem") or b"SECRET" in p.read_bytes())]
    assert left == []
    assert not (root / "opt/appliance").exists() and not (root / "var/lib/appliance").exists()
