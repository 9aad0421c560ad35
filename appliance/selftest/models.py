"""Model weights: the backend loads its files (each hash-checked on load), and every weight file
present in the models folder matches its pin in the manifest (an altered spare is a warning sign)."""
from __future__ import annotations

from ..config import resolve
from ..modelstore import load_manifest, model_path
from .base import CheckResult, SelfTestContext, passed

NAME = "models"


def check(ctx: SelfTestContext) -> CheckResult:
    """Load the engine (ModelError for a missing or altered file it opens), then hash every file
    of the manifest present in models_dir (ModelError names the altered one and the fix)."""
    engine = ctx.engine()
    models_dir = resolve(ctx.cfg.inference.models_dir)
    specs = load_manifest()
    present = [name for name, spec in specs.items() if (models_dir / spec.file).exists()]
    for name in present:
        model_path(name, models_dir)
    pins = ", ".join(f"{n} {specs[n].sha256[:12] or '(built)'}" for n in present)
    return passed(NAME, f"{engine.backend} loaded its models; {len(present)} files in {models_dir} match their pins: {pins}")
