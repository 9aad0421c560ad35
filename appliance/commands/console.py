"""`appliance console`: run the officers' van console; provision its officers and its key."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

from ..errors import UsageError


def _config(args: argparse.Namespace):
    from ..console.config import load_console_config  # noqa: PLC0415  (the unit never loads the console)

    if not args.config:
        raise UsageError("no console config given", fix="pass --config /etc/appliance-console/console.toml")
    return load_console_config(args.config)


def _officers(args: argparse.Namespace):
    from ..console.officers import OfficerStore  # noqa: PLC0415

    return OfficerStore(Path(_config(args).console.state_dir) / "officers.db")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the console over HTTPS until SIGINT/SIGTERM."""
    from ..console.server import serve  # noqa: PLC0415

    serve(_config(args))
    return 0


def _read_pin(args: argparse.Namespace) -> str:
    if args.pin_stdin:
        return sys.stdin.readline().strip()
    pin = getpass.getpass("PIN (6-12 digits): ")
    if getpass.getpass("PIN again: ") != pin:
        raise UsageError("the two PINs differ", fix="type the same PIN twice")
    return pin


def cmd_officers_add(args: argparse.Namespace) -> int:
    """Provision one officer with a PIN (stored as an Argon2id hash only)."""
    _officers(args).add(args.officer_id, _read_pin(args))
    print(f"officer {args.officer_id} added")
    return 0


def cmd_officers_remove(args: argparse.Namespace) -> int:
    """Remove one officer; exit 2 when there was none."""
    if not _officers(args).remove(args.officer_id):
        raise UsageError(f"no officer {args.officer_id}", fix="see `appliance console officers list`")
    print(f"officer {args.officer_id} removed")
    return 0


def cmd_officers_unlock(args: argparse.Namespace) -> int:
    """Clear an officer's lockout after wrong PINs."""
    if not _officers(args).unlock(args.officer_id):
        raise UsageError(f"no officer {args.officer_id}", fix="see `appliance console officers list`")
    print(f"officer {args.officer_id} unlocked")
    return 0


def cmd_officers_list(args: argparse.Namespace) -> int:
    """Print the officers as JSON lines (id, added, failed attempts, locked)."""
    for officer in _officers(args).list():
        officer["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(officer["created"]))
        print(json.dumps(officer))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Create (init) or print (show) the console's signing key; units pin the printed line."""
    from ..console import keys  # noqa: PLC0415

    state = Path(_config(args).console.state_dir)
    if args.keys_command == "init":
        print(f"created {keys.create_key(state)}")
    info = keys.describe(keys.load_key(state))
    print(f"console key (ed25519): {info['console_key']}")
    print(f"key id:                {info['key_id']}")
    print('pin it on each unit:   [mqtt] console_keys = ["' + info["console_key"] + '"]')
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the console commands."""
    p = sub.add_parser("console", help="the officers' van console (HTTPS web app for the tablet)")
    p.add_argument("--config", help="console TOML (deploy/console.example.toml)")
    p.set_defaults(func=cmd_serve)
    csub = p.add_subparsers(dest="console_command", metavar="ACTION")
    officers = csub.add_parser("officers", help="officers who may sign in")
    osub = officers.add_subparsers(dest="officers_command", metavar="ACTION", required=True)
    for name, func, text in (("add", cmd_officers_add, "add an officer with a PIN"),
                             ("remove", cmd_officers_remove, "remove an officer"),
                             ("unlock", cmd_officers_unlock, "clear a lockout after wrong PINs"),
                             ("list", cmd_officers_list, "list officers")):
        q = osub.add_parser(name, help=text)
        if name != "list":
            q.add_argument("officer_id")
        if name == "add":
            q.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
        q.add_argument("--config", default=argparse.SUPPRESS, help="console TOML")
        q.set_defaults(func=func)
    keys = csub.add_parser("keys", help="the console's adjudication signing key")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, text in (("init", "create it (0600); refuses to replace it"), ("show", "print it for the units")):
        q = ksub.add_parser(name, help=text)
        q.add_argument("--config", default=argparse.SUPPRESS, help="console TOML")
        q.set_defaults(func=cmd_keys)
