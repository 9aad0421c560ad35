"""Hailo-8/8L NPU through HailoRT's ``hailo_platform`` (the seam; runs on the device).

The SDK exists only on a Pi 5 with the Hailo PCIe card and its driver. Compiled
networks (HEF files) come from the Hailo Model Zoo at provisioning time and are
pinned by hash in models/manifest.toml; until a HEF is pinned for a model this
backend refuses to open it with a clear message. The on-device tests live in hw/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import BackendUnavailable
from ..modelstore import load_manifest
from .base import BackendSettings

KEY = "hailo"
AUTO_PRIORITY = 0  # the NPU first wherever it is present
DEVICE_NODE = Path("/dev/hailo0")


class Settings(BackendSettings):
    """[inference] backend = "hailo": compiled HEF networks on a Hailo-8/8L NPU."""

    backend: Literal[KEY] = KEY


def probe() -> str | None:
    """None when hailo_platform imports and a Hailo device node exists, else why not."""
    try:
        import hailo_platform  # noqa: F401, PLC0415
    except ImportError:
        return "hailo_platform (HailoRT) is not installed; it ships with the Hailo driver on the device"
    if not DEVICE_NODE.exists():
        return f"no Hailo device at {DEVICE_NODE} (is the PCIe card seated and hailo_pci loaded?)"
    return None


def open_model(name: str, settings: Settings):
    """Open the HEF compiled for model ``name`` on the NPU."""
    hef_name = f"{name}-hef"
    if hef_name not in load_manifest():
        raise BackendUnavailable(
            f"no Hailo HEF is pinned for model '{name}'",
            fix="provision the unit with the HEF from the Hailo Model Zoo (hw/rpi5-hailo8l) "
                "or choose [inference] backend = \"litert\"")
    raise BackendUnavailable("the Hailo runner is not built in this release",
                             fix="choose [inference] backend = \"litert\" until the NPU issue lands")
