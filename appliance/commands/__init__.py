"""Thin CLI modules over library functions; each exposes ``register(sub)``.

A command group (``appliance watchlist ...``) may gather actions from several modules,
e.g. ``watchlist inspect`` here and ``watchlist build`` from the back-office tools:
:func:`command_group` returns the group's action subparsers, creating the group once.
"""
from __future__ import annotations

import argparse

def command_group(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """The ACTION subparsers of command group ``name`` under ``sub`` (created on first use)."""
    groups = vars(sub).setdefault("_appliance_groups", {})
    if name not in groups:
        parser = sub.add_parser(name, help=help_text)
        groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
    return groups[name]
