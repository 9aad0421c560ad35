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


def cmd_models_fetch_hef(args: argparse.Namespace) -> int:
    """Fetch the Hailo HEFs of one chip and check (or report for recording) their SHA-256."""
    from ..modelfetch import fetch_hefs, pin_lines  # noqa: PLC0415

    fetched = fetch_hefs(args.chip, Path(args.models_dir))
    for f in fetched:
        print(f"{'ok ' if f.pinned else 'NEW'}  {f.sha256}  {f.path}")
    lines = pin_lines(fetched)
    if lines:
        print("\nThese HEFs have no pinned hash yet; the unit refuses them until these are reviewed and")
        print("committed to models/manifest.toml (sha256 = ..., and delete the pin line):")
        print(lines)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models fetch` to the models group."""
    q = command_group(sub, "models", "fetch or verify the pinned model weights").add_parser(
        "fetch", help="fetch weights from the registries (needs network access)")
    q.add_argument("--models-dir", default=str(modelstore.DEFAULT_MODELS_DIR))
    q.set_defaults(func=cmd_models_fetch)
    h = command_group(sub, "models", "fetch or verify the pinned model weights").add_parser(
        "fetch-hef", help="fetch the Hailo Model Zoo HEFs for one chip (provisioning; needs internet)")
    h.add_argument("--chip", choices=("hailo8l", "hailo8"), required=True)
    h.add_argument("--models-dir", default=str(modelstore.DEFAULT_MODELS_DIR))
    h.set_defaults(func=cmd_models_fetch_hef)
