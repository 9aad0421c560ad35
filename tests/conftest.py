"""Shared fixtures: the face engine, the datasets under ../shared, composed scenes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LFW = SHARED / "datasets" / "lfw-dev"
APPLIANCE = [sys.executable, "-m", "appliance"]


def lfw_or_skip() -> Path:
    """The lfw-dev folder, or skip the test saying why."""
    if not LFW.is_dir():
        pytest.skip(f"../shared/datasets/lfw-dev absent ({LFW}); CI always has it")
    return LFW


@pytest.fixture(scope="session")
def lfw() -> Path:
    """Path to lfw-dev (skips when absent)."""
    return lfw_or_skip()


@pytest.fixture(scope="session")
def engine():
    """The default face engine (LiteRT on this machine)."""
    from appliance.config import Config
    from appliance.vision.engine import FaceEngine

    return FaceEngine.from_config(Config())


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300,
            **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m appliance ARGS` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*APPLIANCE, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def provision(data_dir: Path) -> Path:
    """Give a test unit its keys (what `appliance keys init` does on a real unit)."""
    from appliance.keystore import open_keystore

    store = open_keystore("file", Path(data_dir))
    if not store.exists():
        store.init()
    return Path(data_dir)
