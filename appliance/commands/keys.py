"""`appliance keys`: the unit's keys (the back office's authority key is in lfr_tools)."""
from __future__ import annotations

import argparse
import base64

from .. import authority
from ..config import Config, load_config
from ..keystore import unit_keystore
from ..keystore.file import fingerprint
from ..watchlist.crypto import recipient_fingerprint


def _unit_store(args: argparse.Namespace):
    cfg = load_config(args.config) if args.config else Config()
    return unit_keystore(cfg), cfg


def cmd_keys_init(args: argparse.Namespace) -> int:
    """Create the unit's Ed25519 signing key and age X25519 identity (0600)."""
    store, cfg = _unit_store(args)
    store.init()
    print(f"created keys for unit {cfg.unit.id} in {store.root}")
    return cmd_keys_show(args)


def cmd_keys_show(args: argparse.Namespace) -> int:
    """Print the unit's public keys and fingerprints (what the back office needs)."""
    store, cfg = _unit_store(args)
    raw = store.signing_public_raw()
    recipient = store.age_recipient()
    print(f"unit:                  {cfg.unit.id}")
    print(f"signing key (ed25519): {authority.PREFIX}{base64.b64encode(raw).decode()}")
    print(f"signing fingerprint:   {fingerprint(raw)}")
    print(f"age recipient:         {recipient}")
    print(f"recipient fingerprint: {recipient_fingerprint(recipient)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the keys commands."""
    p = sub.add_parser("keys", help="the unit's signing key and age identity")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, func, text in (("init", cmd_keys_init, "create the unit's keys (0600); refuses to overwrite"),
                             ("show", cmd_keys_show, "print public keys and fingerprints")):
        q = ksub.add_parser(name, help=text)
        q.add_argument("--config", help="appliance TOML (default: built-in defaults)")
        q.set_defaults(func=func)
