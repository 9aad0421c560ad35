"""Model weights: every file the configured backend loads matches its pinned SHA-256."""
from __future__ import annotations

from .. import inference
from ..config import Config, resolve
from ..modelstore import load_manifest, model_path
from ..vision.engine import EMBEDDER, FOCUS_MODEL
from .base import CheckResult, SelfTestContext, passed

NAME = "models"
SUFFIX = {"litert": "", "onnx": "-onnx", "hailo": "-hef"}  # manifest names per backend file format


def models_of(cfg: Config, backend_key: str) -> list[str]:
    """Manifest names of the files the engine opens for this config on ``backend_key``."""
    names = [cfg.detect.model, EMBEDDER]
    if cfg.detect.focus_tracks and cfg.detect.model != FOCUS_MODEL:
        names.append(FOCUS_MODEL)
    return [name + SUFFIX.get(backend_key, "") for name in names]


def check(ctx: SelfTestContext) -> CheckResult:
    """Hash every model file the unit runs; ModelError (missing, altered) -> FAIL with its fix."""
    module, settings = inference.choose(ctx.cfg.inference)
    backend = module.KEY
    models_dir = resolve(settings.models_dir)
    specs = load_manifest()
    names = models_of(ctx.cfg, backend)
    for name in names:
        model_path(name, models_dir)  # raises ModelError naming the fix
    pins = ", ".join(f"{n} {specs[n].sha256[:12] or '(built)'}" for n in names if n in specs)
    return passed(NAME, f"{len(names)} files for {backend} match their pins in {models_dir}: {pins}")
