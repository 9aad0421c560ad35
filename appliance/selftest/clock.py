"""Clock: not before the software's build date, and synchronised (NTP or a trusted RTC)."""
from __future__ import annotations

from datetime import datetime, timezone

from .base import CheckResult, SelfTestContext, failed, passed, warned

NAME = "clock"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def check(ctx: SelfTestContext) -> CheckResult:
    """FAIL before the build date (every audit time would be wrong); WARN when not synchronised."""
    now, built = ctx.now(), ctx.build_time()
    if now < built:
        return failed(NAME, f"the clock says {_iso(now)}, before this software was built ({_iso(built)})",
                      "connect the unit to a network with NTP (systemctl enable --now systemd-timesyncd) "
                      "or set the time (timedatectl set-time); on a Pi 5 fit the RTC battery")
    synced = ctx.clock_synchronised()
    if synced is None:
        return warned(NAME, f"{_iso(now)}; whether the clock is synchronised cannot be read here",
                      "check `timedatectl` on the unit")
    if not synced:
        return warned(NAME, f"{_iso(now)}, after the build date, but not synchronised (no NTP source "
                            "reached, no trusted RTC)",
                      "enable time sync (systemctl enable --now systemd-timesyncd) and give the van "
                      "network an NTP server, or fit the Pi 5 RTC battery")
    return passed(NAME, f"{_iso(now)}, synchronised, after the build date {_iso(built)}")
