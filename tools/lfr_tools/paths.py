"""Where the tools find the repository's files and the shared data sets.

The tools run from a development checkout (the unit's runtime never imports this).
``LFR_DATASETS`` overrides where the labelled photos live (default: ../shared/datasets
beside the checkout, as on CI).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
DATASETS = Path(os.environ.get("LFR_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
LFW_DEV = DATASETS / "lfw-dev"
