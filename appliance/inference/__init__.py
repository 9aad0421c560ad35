"""Inference backends, one file each, registered by key in one explicit dict.

A backend module exposes ``KEY``, ``AUTO_PRIORITY`` (lower is tried first by "auto";
None: never chosen automatically), ``Settings`` (its own ``[inference]`` keys, tagged
``backend = KEY``), ``probe() -> str | None`` (None when it can run here, else the reason
it cannot) and ``open_model(name, settings)`` returning a
:class:`~appliance.inference.base.Model`. The vendor SDK is imported inside the backend
file only, so a missing SDK is a listed reason, never a NameError.

Every list of backend names (the config's tagged union, ``appliance backends``, the
"auto" order, CLI choices) derives from :data:`BACKENDS`: a name is written once, here.
"""
from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Literal

from pydantic import Field

from ..errors import BackendUnavailable
from .base import BackendSettings

BACKENDS: dict[str, str] = {
    "litert": "appliance.inference.litert",
    "onnx": "appliance.inference.onnx",
    "hailo": "appliance.inference.hailo",
}
AUTO = "auto"


class AutoSettings(BackendSettings):
    """[inference] backend = "auto": the first available backend in AUTO_PRIORITY order.

    Only the keys every CPU backend shares are allowed; name a backend to set its own keys.
    """

    backend: Literal[AUTO] = AUTO
    threads: int = Field(1, ge=1, le=16, description="per model, where the chosen backend has threads")


def backend_module(key: str) -> ModuleType:
    """Import the module of backend ``key`` (no SDK import happens here)."""
    if key not in BACKENDS:
        raise BackendUnavailable(f"unknown inference backend '{key}'",
                                 fix=f"choose one of {', '.join(BACKENDS)} or '{AUTO}'")
    return importlib.import_module(BACKENDS[key])


@cache
def settings_classes() -> tuple[type[BackendSettings], ...]:
    """The settings class of "auto" and of every registered backend (the config's union)."""
    return (AutoSettings, *(backend_module(key).Settings for key in BACKENDS))


def auto_order() -> list[str]:
    """Backend keys "auto" tries, in their declared priority."""
    ranked = [(backend_module(k).AUTO_PRIORITY, k) for k in BACKENDS]
    return [key for priority, key in sorted((p, k) for p, k in ranked if p is not None)]


def availability() -> dict[str, str | None]:
    """Map each backend key to None (available) or the reason it is unavailable."""
    return {key: backend_module(key).probe() for key in BACKENDS}


def choose(settings: BackendSettings) -> tuple[ModuleType, BackendSettings]:
    """The backend module for ``settings`` and its own settings ("auto" picks the first available)."""
    if settings.backend != AUTO:
        module = backend_module(settings.backend)
        reason = module.probe()
        if reason is not None:
            raise BackendUnavailable(f"inference backend '{settings.backend}' is unavailable: {reason}",
                                     fix="choose another backend in [inference] backend, or 'auto'")
        return module, settings
    for key in auto_order():
        module = backend_module(key)
        if module.probe() is None:
            return module, settings_for(key, settings)
    raise BackendUnavailable("no inference backend is available",
                             fix="install ai-edge-litert or onnxruntime (make venv)")


def settings_for(key: str, base: BackendSettings) -> BackendSettings:
    """Settings of backend ``key`` (or "auto") carrying over the keys of ``base`` that it has."""
    cls = AutoSettings if key == AUTO else backend_module(key).Settings
    shared = {k: v for k, v in base.model_dump().items() if k in cls.model_fields and k != "backend"}
    return cls.model_validate(shared)


def names() -> list[str]:
    """What [inference] backend accepts, for CLI choices and messages: "auto" and every backend."""
    return [AUTO, *BACKENDS]
