"""`appliance deployment start|end|status`: the unit's deployment lifecycle (G2, G3, G10)."""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..audit.sink import open_audit_log
from ..config import Config, load_config
from ..errors import AuditError
from ..keystore import unit_keystore
from ..watchlist.deployment import Deployment, open_deployment


def unit_model_id(cfg: Config) -> str:
    """The model id of the embedder this unit runs (from its engine)."""
    from ..vision.engine import FaceEngine  # noqa: PLC0415 - loads the inference runtime

    with FaceEngine.from_config(cfg) as engine:
        return engine.model_id


@contextmanager
def audited_deployment(args: argparse.Namespace, need_model: bool = False,
                       purge_without_audit: bool = False) -> Iterator[Deployment]:
    """The unit's Deployment writing to its audit log (closed, with a signed head, afterwards).

    Start fails closed when the audit log cannot be opened. End and status still
    purge without it (``purge_without_audit``), then report the audit error.
    """
    cfg = load_config(args.config) if args.config else Config()
    model_id = unit_model_id(cfg) if need_model else ""
    store = unit_keystore(cfg)
    try:
        log = open_audit_log(cfg, store)
    except AuditError as exc:
        if not purge_without_audit:
            raise
        deployment = open_deployment(cfg, store, model_id, audit=None)
        yield deployment
        deployment.close()
        raise AuditError(f"the purge was done but could not be audited: {exc.message}", fix=exc.fix) from None
    try:
        deployment = open_deployment(cfg, store, model_id, audit=log.append)
        yield deployment
        deployment.close()
    finally:
        log.close()


def cmd_start(args: argparse.Namespace) -> int:
    """Verify the bundle and make its deployment the active one."""
    with audited_deployment(args, need_model=True) as deployment:
        record = deployment.start(Path(args.bundle), args.location)
    print(f"deployment {record.deployment_id} (bundle v{record.bundle_version}, {record.entry_count} entries) "
          f"active at {record.location!r} until {record.not_after}; authorised by {record.authorising_officer}")
    return 0


def cmd_end(args: argparse.Namespace) -> int:
    """End the active deployment and purge its watchlist."""
    with audited_deployment(args, purge_without_audit=True) as deployment:
        record = deployment.end(args.reason)
    print(f"deployment {record.deployment_id} ended ({record.end_reason}); bundle copy and key destroyed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the active deployment (purging it first if its window is over)."""
    with audited_deployment(args, purge_without_audit=True) as deployment:
        status = deployment.status()
    print(json.dumps(status, indent=2, sort_keys=True))
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
