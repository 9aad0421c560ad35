"""`make deb`: the unit's Debian package, lfr-appliance_<version>_<arch>.deb, built with dpkg-deb.

What goes in (docs/technician.md explains why this shape):

- /opt/appliance/venv: a virtualenv made at build time for the target architecture, holding
  the runtime package ``appliance`` (never the tools) and the pinned wheels of
  deploy/deb/requirements-<arch>.txt, installed offline from a cached wheelhouse with
  ``pip install --target --platform --require-hashes``; byte-compiled; its ``python`` is the
  unit's /usr/bin/python3 and it sees the system site packages (python3-picamera2, HailoRT,
  python3-systemd on Raspberry Pi OS);
- /opt/appliance/models/cache: the weights from models/cache, each checked against its pin
  now and again by postinst;
- the systemd units and the mosquitto drop-in, the board profiles and broker files under
  /usr/share/lfr-appliance, the technician's guide, /usr/bin/appliance.

Every file belongs to root and is tracked by dpkg, so `apt purge` and `dpkg -S` know it.
The wheelhouse (var/cache/deb/wheels-<arch>) is downloaded once per lock file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from appliance import __version__
from appliance.modelstore import load_manifest, model_path

from ..paths import REPO_ROOT
from .lock import ARCHES, PYTHON, download, lock_path, platforms

DEB_DIR = REPO_ROOT / "deploy" / "deb"
CACHE = REPO_ROOT / "var" / "cache" / "deb"
OPT = Path("opt/appliance")
VENV = OPT / "venv"
SITE = VENV / "lib" / f"python{PYTHON}" / "site-packages"
SHARE = Path("usr/share/lfr-appliance")
DOC = Path("usr/share/doc/lfr-appliance")
UNIT_DIR = Path("lib/systemd/system")
SCRIPTS = ("postinst", "prerm", "postrm")
LAUNCHER = f"#!/{VENV}/bin/python\nimport sys\nfrom appliance.cli import main\nsys.exit(main())\n"


def host_arch() -> str:
    """This machine's Debian architecture (dpkg --print-architecture)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def wheelhouse(arch: str) -> Path:
    """The cached wheels for ``arch``; downloaded (hash-checked) only when the lock changed."""
    lock = lock_path(arch)
    if not lock.exists():
        raise SystemExit(f"no wheel lock for {arch}: run `python -m lfr_tools.package.lock --arch {arch}`")
    folder = CACHE / f"wheels-{arch}"
    stamp = folder / ".lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        download({}, arch, folder, lock)
        stamp.write_text(digest)
    return folder


def runtime_wheel(out: Path) -> Path:
    """Build the ``appliance`` wheel (pure Python: the runtime package and its data only).

    setuptools reuses ./build; a stale copy of a removed module there would ship, so it goes first.
    """
    shutil.rmtree(REPO_ROOT / "build", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(out), str(REPO_ROOT)], check=True)
    (wheel,) = out.glob("lfr_appliance-*.whl")
    return wheel


def install_site(stage: Path, arch: str, wheels: Path, own: Path) -> None:
    """Install the locked wheels and the runtime wheel into the staged site-packages."""
    site = stage / SITE
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--only-binary=:all:",
            "--no-compile", "--target", str(site), "--python-version", PYTHON, "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none", "--find-links", str(wheels)]
    base += [arg for tag in platforms(arch) for arg in ("--platform", tag)]
    subprocess.run(base + ["--require-hashes", "-r", str(lock_path(arch))], check=True)
    subprocess.run(base + [str(own)], check=True)
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts point at the build machine's python
    if (site / "lfr_tools").exists():
        raise SystemExit("the tools package must not be in the unit's package")


def make_venv(stage: Path, build: dict) -> None:
    """pyvenv.cfg, the interpreter link, the launcher, the build record; byte-compile."""
    venv = stage / VENV
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = true\nversion = {PYTHON}\n")
    for name in ("python", "python3", f"python{PYTHON}"):
        (venv / "bin" / name).symlink_to(f"/usr/bin/python{PYTHON}")
    (venv / "bin" / "appliance").write_text(LAUNCHER)
    (venv / "lib64").symlink_to("lib")
    (stage / SITE / "appliance" / "data" / "build-info.json").write_text(json.dumps(build, indent=1) + "\n")
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(stage / SITE)], check=True, stdout=subprocess.DEVNULL)


def copy_models(stage: Path, models_dir: Path) -> list[str]:
    """Every manifest model present in ``models_dir``, checked against its pin, with its build record."""
    dest = stage / OPT / "models" / "cache"
    dest.mkdir(parents=True)
    copied = []
    for name, spec in load_manifest().items():
        if not (models_dir / spec.file).exists():
            continue
        shutil.copy2(model_path(name, models_dir), dest / spec.file)  # raises ModelError when altered
        record = models_dir / (spec.file + ".sha256")
        if not spec.sha256 and record.exists():
            shutil.copy2(record, dest / record.name)
        copied.append(name)
    return copied


def copy_files(stage: Path) -> None:
    """Units, drop-in, profiles, broker files, docs, the /usr/bin link."""
    units = stage / UNIT_DIR
    (units / "mosquitto.service.d").mkdir(parents=True)
    for unit in (REPO_ROOT / "systemd").glob("*.service"):
        shutil.copy(unit, units / unit.name)
    shutil.copy(REPO_ROOT / "systemd" / "mosquitto.service.d" / "lfr.conf", units / "mosquitto.service.d")
    for sub, files in (("profiles", (REPO_ROOT / "hw").glob("*.toml")),
                       ("mosquitto", [REPO_ROOT / "deploy" / "mosquitto" / n for n in ("mosquitto.conf", "acl")])):
        (stage / SHARE / sub).mkdir(parents=True)
        for path in files:
            shutil.copy(path, stage / SHARE / sub / path.name)
    (stage / DOC).mkdir(parents=True)
    for name in ("technician.md", "architecture.md"):
        shutil.copy(REPO_ROOT / "docs" / name, stage / DOC / name)
    shutil.copy(DEB_DIR / "copyright", stage / DOC / "copyright")
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "appliance").symlink_to(f"/{VENV}/bin/appliance")


def normalise(stage: Path) -> None:
    """Modes as dpkg expects: directories and executables 0755, other files 0644."""
    for path in [stage, *stage.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or os.access(path, os.X_OK) or path.name == "appliance"
        path.chmod(0o755 if executable else 0o644)


def control(stage: Path, arch: str, version: str) -> None:
    """DEBIAN/: control (with the installed size) and the maintainer scripts."""
    debian = stage / "DEBIAN"
    debian.mkdir()
    size_kb = sum(p.lstat().st_size for p in stage.rglob("*") if p.is_file() and not p.is_symlink()) // 1024
    text = (DEB_DIR / "control.in").read_text()
    for key, value in (("@VERSION@", version), ("@ARCH@", arch), ("@INSTALLED_KB@", str(size_kb))):
        text = text.replace(key, value)
    (debian / "control").write_text(text)
    for name in SCRIPTS:
        shutil.copy(DEB_DIR / name, debian / name)
        (debian / name).chmod(0o755)


def build_info(arch: str) -> dict:
    """What the unit's self-test and commissioning record read: version, commit, build time."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)
        return proc.stdout.strip()

    stamp = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or "0"
    return {"version": __version__, "arch": arch, "commit": git("rev-parse", "HEAD"), "build_time": int(stamp),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def build_deb(arch: str, out: Path, models_dir: Path) -> Path:
    """Build lfr-appliance_<version>_<arch>.deb into ``out``; return its path."""
    if arch not in ARCHES:
        raise SystemExit(f"unknown architecture {arch}: choose one of {', '.join(ARCHES)}")
    wheels = wheelhouse(arch)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deb-") as tmp:
        stage = Path(tmp) / "root"
        install_site(stage, arch, wheels, runtime_wheel(Path(tmp) / "own"))
        make_venv(stage, build_info(arch))
        if not copy_models(stage, models_dir):
            raise SystemExit(f"no model weights in {models_dir}: run `make models` first")
        copy_files(stage)
        normalise(stage)
        control(stage, arch, __version__)
        target = out / f"lfr-appliance_{__version__}_{arch}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zzstd", "-z3", "--build", str(stage), str(target)],
                       check=True, stdout=subprocess.DEVNULL)
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI for `make deb`."""
    parser = argparse.ArgumentParser(description="build the unit's Debian package")
    parser.add_argument("--arch", default=None, help="Debian architecture (default: this machine's)")
    parser.add_argument("--out", default=str(REPO_ROOT / "dist"))
    parser.add_argument("--models-dir", default=str(REPO_ROOT / "models" / "cache"))
    args = parser.parse_args(argv)
    print(build_deb(args.arch or host_arch(), Path(args.out), Path(args.models_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
