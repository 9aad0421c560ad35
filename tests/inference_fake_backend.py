"""A test double inference backend, registered by tests/test_registries.py to show that a
backend named once in the registry reaches every list of names."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from appliance.inference.base import BackendSettings

KEY = "fake"
AUTO_PRIORITY = -1


class Settings(BackendSettings):
    """[inference] backend = "fake"."""

    backend: Literal[KEY] = KEY
    threads: int = Field(1, ge=1, le=16)


def probe() -> str | None:
    """Always available."""
    return None


def open_model(name: str, settings: Settings):
    """Not used by the registry tests."""
    raise NotImplementedError(name)
