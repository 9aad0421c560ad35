"""The base of every config section, shared by config.py and the backends' own settings.

Backends declare their settings next to their code (Frigate's habit); config.py gathers
them from the registries. A separate module, so a backend can declare settings without
importing the whole config.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every config section: unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
