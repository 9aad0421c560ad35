"""Paths from the config: absolute as given, relative ones under the working directory."""
from __future__ import annotations

from pathlib import Path


def resolve(value: str) -> Path:
    """Resolve a path from the config: absolute as given, relative to the working directory.

    On a unit the installed config uses absolute paths (/var/lib/appliance ...);
    relative paths serve the demo and development, run from the repository root.
    """
    return Path(value).expanduser().resolve()
