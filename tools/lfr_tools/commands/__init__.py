"""The tools' commands, added to the one ``appliance`` entry point (entry-point group
``appliance.commands``): bench, eval, embed, quantize, demo, models fetch, authority and
watchlist build."""
from __future__ import annotations

import argparse
import importlib

MODULES = ("bench", "eval", "demo", "backoffice", "models")


def register(sub: argparse._SubParsersAction) -> None:
    """Register every tools command module with the CLI."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
