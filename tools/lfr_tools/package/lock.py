"""The runtime's pinned wheels, per Debian architecture: deploy/deb/requirements-<arch>.txt.

The lock lists every distribution the runtime package ``appliance`` needs on a unit (its
dependency closure, markers evaluated for the target machine), at the versions the test
suite ran with in this checkout's virtualenv, each with the SHA-256 of its wheel for that
architecture. `make deb` installs exactly these wheels, offline, into the package's
virtualenv; pip refuses any file whose hash differs (``--require-hashes``).

    python -m lfr_tools.package.lock --arch amd64 --arch arm64   # needs PyPI; commit the result
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..paths import DEPLOY

LOCK_DIR = DEPLOY / "deb"
RUNTIME = "lfr-appliance"
PYTHON = "3.11"  # Debian bookworm and Raspberry Pi OS bookworm: python3 3.11
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
# bookworm's glibc is 2.36: any manylinux wheel up to 2_36 runs
GLIBC_MINORS = range(17, 37)


def lock_path(arch: str) -> Path:
    """Where the lock for a Debian architecture lives."""
    return LOCK_DIR / f"requirements-{arch}.txt"


def platforms(arch: str) -> list[str]:
    """pip --platform tags a bookworm machine of ``arch`` accepts."""
    machine = ARCHES[arch]
    return [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS] + [f"manylinux2014_{machine}"]


def marker_env(arch: str) -> dict[str, str]:
    """Marker environment of the target unit (not of this build machine)."""
    return {"platform_machine": ARCHES[arch], "sys_platform": "linux", "platform_system": "Linux",
            "os_name": "posix", "python_version": PYTHON, "python_full_version": f"{PYTHON}.2",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def closure(arch: str, root: str = RUNTIME) -> dict[str, str]:
    """name -> version of ``root`` and everything it needs on ``arch`` (from installed metadata)."""
    env, found, todo = marker_env(arch), {}, [root]
    while todo:
        dist = distribution(todo.pop())
        name = canonicalize_name(dist.metadata["Name"])
        if name in found:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    found.pop(canonicalize_name(root))
    return dict(sorted(found.items()))


def download(pins: dict[str, str], arch: str, dest: Path, lock: Path | None = None) -> None:
    """Fetch the wheels for ``arch`` (binary only, for CPython 3.11 on bookworm) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", PYTHON, "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
           "--abi", "none", "-d", str(dest)]
    cmd += [arg for tag in platforms(arch) for arg in ("--platform", tag)]
    cmd += ["--require-hashes", "-r", str(lock)] if lock else [f"{n}=={v}" for n, v in pins.items()]
    subprocess.run(cmd, check=True)


def wheel_hashes(folder: Path) -> dict[str, str]:
    """Canonical distribution name -> SHA-256 of its one wheel in ``folder``."""
    hashes = {}
    for wheel in sorted(folder.glob("*.whl")):
        name = canonicalize_name(wheel.name.split("-")[0])
        hashes[name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return hashes


def write_lock(arch: str) -> Path:
    """Resolve, download and write deploy/deb/requirements-<arch>.txt."""
    pins = closure(arch)
    with tempfile.TemporaryDirectory(prefix=f"lock-{arch}-") as tmp:
        download(pins, arch, Path(tmp))
        hashes = wheel_hashes(Path(tmp))
    missing = sorted(set(pins) - set(hashes))
    if missing:
        raise SystemExit(f"no {arch} wheel downloaded for {', '.join(missing)}")
    lines = [f"# Runtime wheels for Debian bookworm {arch} (CPython {PYTHON}); "
             "made by `python -m lfr_tools.package.lock`"]
    lines += [f"{name}=={version} --hash=sha256:{hashes[name]}" for name, version in pins.items()]
    path = lock_path(arch)
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI: write the lock for each --arch."""
    parser = argparse.ArgumentParser(description="pin the runtime's wheels per architecture")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), required=True)
    for arch in parser.parse_args(argv).arch:
        print(write_lock(arch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
