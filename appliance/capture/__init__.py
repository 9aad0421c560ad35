"""Capture backends, one file each, registered by key in an explicit dict.

A backend module exposes ``KEY``, ``probe() -> str | None`` and
``open_source(cfg: CaptureConfig) -> FrameSource``. Frames carry a sequence
number and a monotonic timestamp (see :mod:`appliance.capture.base`).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import BackendUnavailable

CAPTURES: dict[str, str] = {
    "replay": "appliance.capture.replay",
    "opencv": "appliance.capture.opencv",
    "picamera2": "appliance.capture.picamera2",
}


def capture_module(key: str) -> ModuleType:
    """Import the module of capture backend ``key``."""
    if key not in CAPTURES:
        raise BackendUnavailable(f"unknown capture backend '{key}'", fix=f"choose one of {', '.join(CAPTURES)}")
    return importlib.import_module(CAPTURES[key])


def availability() -> dict[str, str | None]:
    """Map each capture backend to None (available) or the reason it is not."""
    return {key: capture_module(key).probe() for key in CAPTURES}


def choose(key: str) -> ModuleType:
    """Return the capture module for ``key`` or raise BackendUnavailable with the reason."""
    module = capture_module(key)
    reason = module.probe()
    if reason is not None:
        raise BackendUnavailable(f"capture backend '{key}' is unavailable: {reason}",
                                 fix="choose another [capture] backend")
    return module
