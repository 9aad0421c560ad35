"""Capture backends, one file each, registered by key in one explicit dict.

A backend module exposes ``KEY``, ``Settings`` (its own ``[capture]`` keys, tagged
``backend = KEY``), ``probe() -> str | None`` and ``open_source(settings) -> FrameSource``.
Frames carry a sequence number and a monotonic timestamp (see :mod:`appliance.capture.base`).
Every list of capture backend names derives from :data:`CAPTURES`.
"""
from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from ..errors import BackendUnavailable
from .base import CaptureSettings, FrameSource

CAPTURES: dict[str, str] = {
    "replay": "appliance.capture.replay",
    "opencv": "appliance.capture.opencv",
    "picamera2": "appliance.capture.picamera2",
}
DEFAULT = next(iter(CAPTURES))  # the replay backend: what a config without [capture] backend gets


def capture_module(key: str) -> ModuleType:
    """Import the module of capture backend ``key``."""
    if key not in CAPTURES:
        raise BackendUnavailable(f"unknown capture backend '{key}'", fix=f"choose one of {', '.join(CAPTURES)}")
    return importlib.import_module(CAPTURES[key])


@cache
def settings_classes() -> tuple[type[CaptureSettings], ...]:
    """The settings class of every registered capture backend (the config's union)."""
    return tuple(capture_module(key).Settings for key in CAPTURES)


def availability() -> dict[str, str | None]:
    """Map each capture backend to None (available) or the reason it is not."""
    return {key: capture_module(key).probe() for key in CAPTURES}


def open_source(settings: CaptureSettings) -> FrameSource:
    """Open the source ``settings`` name, or raise BackendUnavailable with the reason."""
    module = capture_module(settings.backend)
    reason = module.probe()
    if reason is not None:
        raise BackendUnavailable(f"capture backend '{settings.backend}' is unavailable: {reason}",
                                 fix="choose another [capture] backend")
    return module.open_source(settings)
