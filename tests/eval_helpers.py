"""Helpers for the eval and embed tests: where lfw-dev is, and one engine per module."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LFW_DEV = SHARED / "datasets" / "lfw-dev"


def lfw_dev_or_skip() -> Path:
    """The lfw-dev folder, or skip the test when ../shared/datasets is absent."""
    if not LFW_DEV.is_dir():
        pytest.skip(f"../shared/datasets absent: {LFW_DEV} not found")
    return LFW_DEV


def eval_engine():
    """The unit's engine as `appliance eval` builds it (skips if the weights are not fetched)."""
    from lfr_tools.commands.eval import build_engine
    from appliance.errors import ModelError

    try:
        return build_engine(None, None)
    except ModelError as exc:
        pytest.skip(f"model weights missing ({exc}); run `make models`")
