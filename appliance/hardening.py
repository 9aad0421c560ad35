"""In-process hardening the service applies to itself at start.

A core dump of a running unit holds decoded frames (a review found 65 in one core): faces
of people who are not on any watchlist, written to disk. ``LimitCORE=0`` in the unit stops
systemd-coredump from getting one; :func:`disable_core_dumps` does the same from inside the
process, so a unit started by hand or by another supervisor is covered too, and marks the
process non-dumpable so that no other process of the same user can ptrace it or read its
memory through /proc/<pid>/mem.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
PR_GET_DUMPABLE = 3


@dataclass(frozen=True)
class CoreDumpState:
    """What :func:`disable_core_dumps` achieved: the core size limit and the dumpable flag."""

    rlimit_core: tuple[int, int]
    dumpable: int | None  # None where prctl is not available (not Linux)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def _prctl(libc: ctypes.CDLL, option: int, arg: int = 0) -> int:
    result = libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0))
    if result < 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")
    return result


def disable_core_dumps() -> CoreDumpState:
    """Set RLIMIT_CORE to (0, 0) and PR_SET_DUMPABLE to 0; return the resulting state.

    The hard limit goes to 0 as well, so nothing in the process can raise it again.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    dumpable = None
    if libc is not None and hasattr(libc, "prctl"):
        _prctl(libc, PR_SET_DUMPABLE, 0)
        dumpable = _prctl(libc, PR_GET_DUMPABLE)
    else:
        log.warning("prctl is not available here: the process stays dumpable (core size is 0)")
    return CoreDumpState(resource.getrlimit(resource.RLIMIT_CORE), dumpable)
