"""Facts about the machine the checks read: build date, clock synchronisation, service status."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import subprocess
from pathlib import Path

from .. import __file__ as _package_file

BUILD_INFO = Path(_package_file).resolve().parent / "data" / "build-info.json"
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
STA_UNSYNC = 0x0040


def build_time() -> float:
    """When this software was built: build-info.json (written by `make deb`), else the newest
    source file of the package (a development checkout)."""
    try:
        return float(json.loads(BUILD_INFO.read_text())["build_time"])
    except (OSError, ValueError, KeyError, TypeError):
        package = Path(_package_file).resolve().parent
        return max(p.stat().st_mtime for p in package.rglob("*.py"))


class _Timex(ctypes.Structure):
    # struct timex (<sys/timex.h>): the fields up to `status`, then room for the rest
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_byte * 256)]


def _adjtimex_synchronised() -> bool | None:
    """The kernel's view (adjtimex(2) read-only): True synchronised, False not, None unknown."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        libc = None
    if libc is None or not hasattr(libc, "adjtimex"):
        return None
    timex = _Timex()
    state = libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def _timedatectl_synchronised() -> bool | None:
    """systemd's view (timedatectl, needs systemd as init): True / False, None when unavailable."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    proc = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                          text=True, timeout=10)
    value = proc.stdout.strip()
    return {"yes": True, "no": False}.get(value) if proc.returncode == 0 else None


def clock_synchronised() -> bool | None:
    """Whether the system clock is synchronised (NTP, or an RTC the kernel trusts); None unknown."""
    via_systemd = _timedatectl_synchronised()
    return via_systemd if via_systemd is not None else _adjtimex_synchronised()


def service_status_text(unit: str) -> str | None:
    """The running service's STATUS= text (`systemctl show`), or None when it is not active."""
    tool = shutil.which("systemctl")
    if tool is None:
        return None
    proc = subprocess.run([tool, "show", unit, "-p", "ActiveState", "-p", "StatusText"],
                          capture_output=True, text=True, timeout=10)
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0 or fields.get("ActiveState") != "active":
        return None
    return fields.get("StatusText", "")
