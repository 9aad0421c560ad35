"""Where log records go: journald with structured fields under systemd, plain stderr elsewhere.

systemd sets ``$JOURNAL_STREAM`` (``<device>:<inode>``) when a service's stderr is connected
to the journal (systemd.exec(5)); only then, and only when systemd-python is installed
(python3-systemd on Raspberry Pi OS and Debian), records go through
``systemd.journal.JournalHandler`` with their priority, logger, thread and source location as
journal fields plus ``APPLIANCE_UNIT``, so ``journalctl -u appliance PRIORITY=3`` or
``journalctl APPLIANCE_UNIT=van-01`` find them. Anywhere else (a technician's terminal, the
tests, a pipe) they are plain text lines on stderr.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IDENTIFIER = "appliance"


def stderr_is_journal(stream: TextIO | None = None, environ: dict | None = None) -> bool:
    """True when $JOURNAL_STREAM names the device and inode of ``stream`` (stderr)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def journal_handler(unit_id: str = "", sender=None) -> logging.Handler | None:
    """A JournalHandler tagged with the unit id; None when systemd-python is absent."""
    try:
        from systemd.journal import JournalHandler, send  # noqa: PLC0415 - optional package
    except ImportError:
        return None
    fields = {"SYSLOG_IDENTIFIER": IDENTIFIER}
    if unit_id:
        fields["APPLIANCE_UNIT"] = unit_id
    return JournalHandler(sender_function=sender or send, **fields)


def configure_logging(level: int = logging.WARNING, unit_id: str = "", stream: TextIO | None = None,
                      force: bool = False) -> logging.Handler | None:
    """Install one root handler (journald under systemd, else stderr) at ``level``; return it.

    Like ``logging.basicConfig``, nothing is installed when the root logger already has a
    handler someone else put there (pytest's, an embedding program's) unless ``force``; a
    handler from an earlier call is replaced.
    """
    root = logging.getLogger()
    if not force and any(not getattr(h, "installed_by_appliance", False) for h in root.handlers):
        return None
    stream = stream or sys.stderr
    handler = journal_handler(unit_id) if stderr_is_journal(stream) else None
    if handler is None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
    handler.installed_by_appliance = True  # replaced on the next call; other handlers (pytest's) stay
    for old in [h for h in root.handlers if getattr(h, "installed_by_appliance", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
