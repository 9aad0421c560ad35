"""The one entry point, ``appliance``: a thin CLI over library functions.

Every subsystem registers its subcommands from its own module, listed in
COMMAND_MODULES; tooling installed beside the firmware (``lfr_tools``: bench, eval, demo,
back office) adds its commands through the ``appliance.commands`` entry-point group, so
a unit that has only the runtime package has only the unit's commands. Typed errors are caught here, at one boundary, and printed as
a message that names the fix, with the documented exit code; never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

from . import __version__
from .errors import EXIT_CODES, ApplianceError
from .logs import configure_logging

COMMAND_MODULES = [
    "appliance.commands.core",
    "appliance.commands.vision",
    "appliance.commands.mqtt",
    "appliance.commands.keys",
    "appliance.commands.watchlist",
    "appliance.commands.deployment",
    "appliance.commands.audit",
    "appliance.commands.selftest",
    "appliance.commands.provision",
]
PLUGIN_GROUP = "appliance.commands"


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every registered command module."""
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in sorted(EXIT_CODES.items()))
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Live facial recognition appliance for police camera vans.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for plugin in entry_points(group=PLUGIN_GROUP):
        plugin.load().register(sub)
    return parser


AUDITOR_COMMAND = ["audit", "verify"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == AUDITOR_COMMAND:
        # the auditor's laptop has Python and `cryptography` only: skip every other command module
        from .audit.verify import main as verify_main  # noqa: PLC0415

        return verify_main(argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.WARNING)  # journald under systemd
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one boundary: a bug, reported without a traceback
        logging.getLogger("appliance").debug("internal error", exc_info=True)
        print(f"error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("fix: this is a bug; run again with -v for the traceback and report it", file=sys.stderr)
        return 1
