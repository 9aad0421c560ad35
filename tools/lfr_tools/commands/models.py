"""`appliance models fetch`: the pinned weights from their registries (provisioning)."""
from __future__ import annotations

import argparse
from pathlib import Path

from appliance import modelstore
from appliance.commands import command_group


def cmd_models_fetch(args: argparse.Namespace) -> int:
    """Fetch the pinned model weights and build the ONNX conversions."""
    from ..modelfetch import fetch_all  # noqa: PLC0415

    for path in fetch_all(Path(args.models_dir)):
        print(f"ok  {modelstore.sha256_file(path)}  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models fetch` to the models group."""
    q = command_group(sub, "models", "fetch or verify the pinned model weights").add_parser(
        "fetch", help="fetch weights from the registries (needs network access)")
    q.add_argument("--models-dir", default=str(modelstore.DEFAULT_MODELS_DIR))
    q.set_defaults(func=cmd_models_fetch)
