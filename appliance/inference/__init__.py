"""Inference backends, one file each, registered by key in an explicit dict.

A backend module exposes ``KEY``, ``probe() -> str | None`` (None when it can
run here, else the reason it cannot) and ``open_model(name, models_dir, threads)``
returning a :class:`~appliance.inference.base.Model`. The vendor SDK is imported
inside the backend file only, so a missing SDK is a listed reason, never a NameError.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import BackendUnavailable

BACKENDS: dict[str, str] = {
    "litert": "appliance.inference.litert",
    "onnx": "appliance.inference.onnx",
    "hailo": "appliance.inference.hailo",
}
AUTO_ORDER = ("hailo", "litert", "onnx")


def backend_module(key: str) -> ModuleType:
    """Import the module of backend ``key`` (no SDK import happens here)."""
    if key not in BACKENDS:
        raise BackendUnavailable(f"unknown inference backend '{key}'",
                                 fix=f"choose one of {', '.join(BACKENDS)} or 'auto'")
    return importlib.import_module(BACKENDS[key])


def availability() -> dict[str, str | None]:
    """Map each backend key to None (available) or the reason it is unavailable."""
    return {key: backend_module(key).probe() for key in BACKENDS}


def choose(key: str) -> ModuleType:
    """Return the backend module for ``key`` ('auto' picks the first available)."""
    if key == "auto":
        for candidate in AUTO_ORDER:
            if backend_module(candidate).probe() is None:
                return backend_module(candidate)
        raise BackendUnavailable("no inference backend is available",
                                 fix="install ai-edge-litert or onnxruntime (make venv)")
    module = backend_module(key)
    reason = module.probe()
    if reason is not None:
        raise BackendUnavailable(f"inference backend '{key}' is unavailable: {reason}",
                                 fix="choose another backend in [inference] backend, or 'auto'")
    return module
