"""Board profiles at start-up: which backends run, and the fallback the profile allows.

A board profile (hw/*.toml) names an inference and a capture backend and, in ``[board]``,
what to do when one cannot run here: ``inference_fallback = "litert"`` runs the CPU instead
of a missing or refused NPU; ``"none"`` refuses to start. :func:`resolve_profile` decides
once, before the engine is built; the unit shows the result in its status and audits every
fallback as a ``fault`` event of kind ``backend_fallback``. A fallback changes the embedding
model, so the deployment's watchlist bundle must carry that model's vectors too
(docs/watchlist.md, multi-model bundles).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import capture, inference
from .config import Config
from .errors import BackendUnavailable

Check = Callable[[str, Config], "str | None"]


@dataclass(frozen=True)
class Fallback:
    """One backend that could not run and what runs instead."""

    kind: str  # "inference" or "capture"
    wanted: str
    chosen: str
    reason: str

    def detail(self) -> str:
        """One line for the audit log (fault detail, at most 200 characters)."""
        return f"{self.kind} {self.wanted} unavailable, running {self.chosen}: {self.reason}"[:200]


@dataclass(frozen=True)
class Resolution:
    """The backends a unit runs and why, for its status and audit log."""

    profile: str
    inference: str
    capture: str
    fallbacks: tuple[Fallback, ...] = ()
    missing_devices: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        """True when the unit runs something other than its profile promises."""
        return bool(self.fallbacks or self.missing_devices)

    def status(self) -> dict:
        """The `backends` block of the unit's status (MQTT status payload, `appliance status`)."""
        return {"profile": self.profile, "inference": self.inference, "capture": self.capture,
                "degraded": self.degraded, "fallbacks": [f.detail() for f in self.fallbacks],
                "missing_devices": list(self.missing_devices)}

    def config(self, cfg: Config) -> Config:
        """``cfg`` with [inference] and [capture] set to the backends chosen (a fallback keeps the
        keys its settings share with the configured ones, e.g. models_dir and camera_id)."""
        inf = cfg.inference if cfg.inference.backend in (self.inference, inference.AUTO) else \
            inference.settings_for(self.inference, cfg.inference)
        cap = cfg.capture
        if cap.backend != self.capture:
            cls = capture.capture_module(self.capture).Settings
            cap = cls.model_validate({k: v for k, v in cap.model_dump().items() if k in cls.model_fields and k != "backend"})
        return cfg.model_copy(update={"inference": inf, "capture": cap})

    def audit_events(self) -> list[tuple[str, dict]]:
        """(event type, payload) pairs to append to the audit log at start-up."""
        events = [("fault", {"kind": "backend_fallback", "detail": f.detail()}) for f in self.fallbacks]
        if self.missing_devices:
            events.append(("fault", {"kind": "other", "detail": (
                f"board profile {self.profile}: missing {', '.join(self.missing_devices)}")[:200]}))
        return events


def inference_reason(key: str, cfg: Config) -> str | None:
    """Why inference backend ``key`` cannot run here (its probe, then its preflight if it has one)."""
    module = inference.backend_module(key)
    reason = module.probe()
    if reason is None and hasattr(module, "preflight"):
        reason = module.preflight(inference.settings_for(key, cfg.inference)
                                  if cfg.inference.backend != key else cfg.inference)
    return reason


def capture_reason(key: str, cfg: Config) -> str | None:
    """Why capture backend ``key`` cannot run here."""
    return capture.capture_module(key).probe()


def _choose(kind: str, wanted: str, fallback: str, reason: str | None, fallback_reason: str | None) -> tuple[str, Fallback | None]:
    if reason is None:
        return wanted, None
    if fallback == "none":
        raise BackendUnavailable(f"{kind} backend '{wanted}' is unavailable: {reason}",
                                 fix=f"fix the cause, or allow a fallback with [board] {kind}_fallback")
    if fallback_reason is not None:
        raise BackendUnavailable(f"{kind} backend '{wanted}' is unavailable ({reason}) and its fallback "
                                 f"'{fallback}' too ({fallback_reason})", fix="run `appliance backends` on the unit")
    return fallback, Fallback(kind, wanted, fallback, reason)


def _auto(cfg: Config, check: Check) -> str:
    for key in inference.auto_order():
        if check(key, cfg) is None:
            return key
    raise BackendUnavailable("no inference backend is available", fix="install ai-edge-litert or onnxruntime (make venv)")


def resolve_profile(cfg: Config, check_inference: Check = inference_reason, check_capture: Check = capture_reason,
                    device_exists: Callable[[Path], bool] = Path.exists) -> Resolution:
    """Decide the backends from the config's profile: the configured ones, or their allowed fallbacks.

    Raises BackendUnavailable (exit 6) when a backend cannot run and the profile allows no
    fallback, or the fallback cannot run either.
    """
    board, fallbacks = cfg.board, []
    wanted_inf = cfg.inference.backend
    if wanted_inf == "auto":
        chosen_inf = _auto(cfg, check_inference)
    else:
        reason = check_inference(wanted_inf, cfg)
        spare = check_inference(board.inference_fallback, cfg) if reason and board.inference_fallback != "none" else None
        chosen_inf, fb = _choose("inference", wanted_inf, board.inference_fallback, reason, spare)
        fallbacks += [fb] if fb else []
    reason = check_capture(cfg.capture.backend, cfg)
    spare = check_capture(board.capture_fallback, cfg) if reason and board.capture_fallback != "none" else None
    chosen_cap, fb = _choose("capture", cfg.capture.backend, board.capture_fallback, reason, spare)
    fallbacks += [fb] if fb else []
    missing = tuple(d for d in board.devices if not device_exists(Path(d)))
    return Resolution(board.profile or "custom", chosen_inf, chosen_cap, tuple(fallbacks), missing)
