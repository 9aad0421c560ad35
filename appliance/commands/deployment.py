"""`appliance deployment start|end|status`: the unit's deployment lifecycle (G2, G3, G10)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Config, load_config
from ..watchlist.deployment import open_deployment


def unit_model_id(cfg: Config) -> str:
    """The model id of the embedder this unit runs (from its engine)."""
    from ..vision.engine import FaceEngine  # noqa: PLC0415 - loads the inference runtime

    return FaceEngine.from_config(cfg).model_id


def _deployment(args: argparse.Namespace, need_model: bool = False):
    cfg = load_config(args.config) if args.config else Config()
    model_id = unit_model_id(cfg) if need_model else ""
    return open_deployment(cfg, model_id, audit=audit_sink(cfg))


def audit_sink(cfg: Config):
    """The unit's audit log as a ``(event, fields)`` callable, once the audit log exists; else None."""
    return None


def cmd_start(args: argparse.Namespace) -> int:
    """Verify the bundle and make its deployment the active one."""
    deployment = _deployment(args, need_model=True)
    record = deployment.start(Path(args.bundle), args.location)
    deployment.close()
    print(f"deployment {record.deployment_id} (bundle v{record.bundle_version}, {record.entry_count} entries) "
          f"active at {record.location!r} until {record.not_after}; authorised by {record.authorising_officer}")
    return 0


def cmd_end(args: argparse.Namespace) -> int:
    """End the active deployment and purge its watchlist."""
    record = _deployment(args).end(args.reason)
    print(f"deployment {record.deployment_id} ended ({record.end_reason}); bundle copy and key destroyed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the active deployment (purging it first if its window is over)."""
    print(json.dumps(_deployment(args).status(), indent=2, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the deployment commands."""
    p = sub.add_parser("deployment", help="start, end or show the unit's deployment (signed watchlist)")
    dsub = p.add_subparsers(dest="deployment_command", metavar="ACTION", required=True)
    q = dsub.add_parser("start", help="verify a bundle and start its deployment")
    q.add_argument("--bundle", required=True, help="the .lfrwl bundle from the back office")
    q.add_argument("--location", required=True, help="location label recorded in the audit log")
    q.add_argument("--config", help="appliance TOML")
    q.set_defaults(func=cmd_start)
    q = dsub.add_parser("end", help="end the active deployment and purge its watchlist")
    q.add_argument("--reason", default="ended by operator")
    q.add_argument("--config", help="appliance TOML")
    q.set_defaults(func=cmd_end)
    q = dsub.add_parser("status", help="show the active deployment")
    q.add_argument("--config", help="appliance TOML")
    q.set_defaults(func=cmd_status)
