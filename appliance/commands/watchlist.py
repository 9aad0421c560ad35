"""`appliance watchlist inspect` (manifest only; `watchlist build` is back-office tooling)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..authority import parse_public
from ..config import load_config
from ..watchlist.container import read_bundle
from ..watchlist.verify import check_signature
from . import command_group


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print the manifest (no decryption); with --config, also whether its signer is trusted."""
    cfg = load_config(args.config) if args.config else None
    bundle = read_bundle(Path(args.file), cfg.watchlist.max_bundle_bytes if cfg else 2 * 1024 ** 3)
    out = {"file": args.file, "bundle_sha256": bundle.sha256, "bundle_bytes": bundle.size,
           "manifest": bundle.manifest.summary()}
    if cfg is not None:
        check_signature(bundle, tuple(parse_public(t) for t in cfg.watchlist.trusted_authorities))
        out["signature"] = "valid, by a trusted authority"
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the watchlist commands."""
    q = command_group(sub, "watchlist", "build (back office) or inspect a signed, encrypted watchlist bundle") \
        .add_parser("inspect", help="print a bundle's manifest without decrypting it")
    q.add_argument("file")
    q.add_argument("--config", help="also check the signer against this config's trusted authorities")
    q.set_defaults(func=cmd_inspect)
