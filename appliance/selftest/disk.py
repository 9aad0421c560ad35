"""Disk: free space on the data partition for the audit log, the outbox and the watchlist copy."""
from __future__ import annotations

import shutil

from .base import GIB, CheckResult, SelfTestContext, failed, passed, warned

NAME = "disk"


def check(ctx: SelfTestContext) -> CheckResult:
    """FAIL below ``min_free_bytes`` (the audit log could fill and stop matching), WARN below ``warn_free_bytes``."""
    usage = shutil.disk_usage(ctx.data_dir)
    seen = f"{usage.free / GIB:.1f} GiB free of {usage.total / GIB:.1f} GiB at {ctx.data_dir}"
    fix = ("free space on the data partition (old exports, logs: journalctl --vacuum-size=200M) "
           "or use a larger SD card / SSD")
    if usage.free < ctx.min_free_bytes:
        return failed(NAME, f"{seen}; at least {ctx.min_free_bytes / GIB:.1f} GiB is needed", fix)
    if usage.free < ctx.warn_free_bytes:
        return warned(NAME, f"{seen}; below {ctx.warn_free_bytes / GIB:.1f} GiB", fix)
    return passed(NAME, seen)
