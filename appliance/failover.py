"""Inference fallback at run time: the NPU (or any backend) fails, the CPU takes over, or
matching stops and says why.

When the pipeline stops because its inference backend failed (a BackendUnavailable from the
analyse or finish stage: the Hailo runtime refusing requests, a CPU runtime crashing) and the
board profile names an ``[board] inference_fallback``, :func:`fail_over` builds the engine on
the fallback backend and the unit runs the pipeline again, audited as a ``backend_fallback``
fault. Embeddings of different models are not comparable, so the fallback matches only if the
active deployment's bundle carries entries for the fallback's model (a multi-model bundle,
docs/watchlist.md); if it does not, the unit does not fall back: it stops matching, audits why
and exits with the backend's error (systemd's restart then starts the unit on whatever the
board profile resolves to, and the status says why nothing matches).
"""
from __future__ import annotations

import logging

from . import inference
from .errors import BackendUnavailable
from .pipeline.runner import RunResult
from .vision.engine import FaceEngine

log = logging.getLogger(__name__)

FAILING_STAGES = ("analyse", "finish")


def _backend_failed(unit, result: RunResult) -> bool:
    fault = unit.supervisor.last_fault()
    return (isinstance(result.error, BackendUnavailable) and fault is not None
            and fault["stage"] in FAILING_STAGES)


def _fallback_key(unit) -> str | None:
    """The backend to fall back to, if the board allows one other than the one that failed."""
    key = unit.cfg.board.inference_fallback
    if key == "none" or key == unit.engine.backend or inference.backend_module(key).probe() is not None:
        return None
    return key


def fail_over(unit, result: RunResult) -> bool:
    """After a run: if it ended because the inference backend failed and a fallback can take over
    with this deployment's watchlist, switch the unit to it and return True (run again)."""
    if not _backend_failed(unit, result):
        return False
    key = _fallback_key(unit)
    if key is None:
        return False
    cfg = unit.cfg.model_copy(update={"inference": inference.settings_for(key, unit.cfg.inference)})
    engine = FaceEngine.from_config(cfg)
    failed = unit.engine.backend
    if unit.deployment is not None and unit.deployment.carries(engine.model_id) is False:
        engine.close()
        unit.audit.append("fault", {"kind": "backend_fallback", "detail": (
            f"inference: {failed} failed; the watchlist has no entries for {key}'s model {engine.model_id} "
            "(embeddings of different models are not comparable): matching stopped")[:200]})
        return False
    unit.audit.append("fault", {"kind": "backend_fallback", "detail": (
        f"inference: {failed} failed ({result.error.message[:80]}); now {key}, model {engine.model_id}")[:200]})
    log.error("inference backend %s failed; falling back to %s", failed, key)
    unit.replace_engine(engine, cfg)
    return True
