"""Core commands: backends, validate-config, models verify."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import inference, modelstore
from ..config import load_config
from . import command_group


def cmd_backends(args: argparse.Namespace) -> int:
    """List every inference and capture backend as available or unavailable: reason."""
    from .. import capture  # noqa: PLC0415

    for title, table in (("inference", inference.availability()), ("capture", capture.availability())):
        for key, reason in table.items():
            print(f"{title:9} {key:10} {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


def cmd_validate_config(args: argparse.Namespace) -> int:
    """Validate a config file; print OK or every error with file, key and reason."""
    cfg = load_config(args.file)
    print(f"{args.file}: OK (unit {cfg.unit.id}, capture {cfg.capture.backend}, "
          f"inference {cfg.inference.backend})")
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    """Check every model file against its pinned hash."""
    models_dir = Path(args.models_dir)
    for name, spec in modelstore.load_manifest().items():
        if spec.npu and not (models_dir / spec.file).exists():
            print(f"--  {name}  not provisioned (Hailo {spec.chip} HEF: `appliance models fetch-hef --chip {spec.chip}`)")
            continue
        print(f"ok  {name}  {modelstore.model_path(name, models_dir)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the core commands to the CLI."""
    p = sub.add_parser("backends", help="list inference and capture backends and why any is unavailable")
    p.set_defaults(func=cmd_backends)
    p = sub.add_parser("validate-config", help="check a config file strictly")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate_config)
    q = command_group(sub, "models", "fetch or verify the pinned model weights").add_parser(
        "verify", help="check every model's SHA-256")
    q.add_argument("--models-dir", default=str(modelstore.DEFAULT_MODELS_DIR))
    q.set_defaults(func=cmd_models_verify)
