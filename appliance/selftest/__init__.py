"""`appliance selftest`: can this unit be trusted to work? One small module per check.

Each check takes a :class:`~appliance.selftest.base.SelfTestContext` and returns a
:class:`~appliance.selftest.base.CheckResult`: PASS, WARN (works, but look at it; or the
hardware is not fitted here) or FAIL, always with what was seen and, unless it passed, the
fix. The checks run in the order a technician would fix things: hardware, models, keys,
clock and disk first, then the broker, the audit log and the deployment state.
"""
from __future__ import annotations

import logging
from typing import Callable

from ..errors import ApplianceError
from . import audit, broker, camera, clock, deployment, disk, inference, keys, models, npu
from .base import CheckResult, Outcome, SelfTestContext

log = logging.getLogger(__name__)

Check = Callable[[SelfTestContext], CheckResult]

CHECKS: dict[str, Check] = {
    "camera": camera.check,
    "models": models.check,
    "inference": inference.check,
    "npu": npu.check,
    "keys": keys.check,
    "clock": clock.check,
    "disk": disk.check,
    "broker": broker.check,
    "audit": audit.check,
    "deployment": deployment.check,
}


def run_check(name: str, check: Check, ctx: SelfTestContext) -> CheckResult:
    """Run one check; a typed error becomes a FAIL carrying its fix, a bug a FAIL saying so."""
    try:
        return check(ctx)
    except ApplianceError as exc:
        return CheckResult(name, Outcome.FAIL, exc.message, exc.fix)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' results
        log.debug("self-test check %s crashed", name, exc_info=True)
        return CheckResult(name, Outcome.FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                           "this is a bug: run `appliance -v selftest` and report the traceback")


def run_selftest(ctx: SelfTestContext, only: list[str] | None = None) -> list[CheckResult]:
    """Run every check (or those named in ``only``) in order; return their results."""
    try:
        return [run_check(name, check, ctx) for name, check in CHECKS.items() if not only or name in only]
    finally:
        ctx.close()


def overall(results: list[CheckResult]) -> Outcome:
    """The worst outcome of all results (FAIL > WARN > PASS)."""
    return max((r.outcome for r in results), default=Outcome.PASS)


__all__ = ["CHECKS", "CheckResult", "Outcome", "SelfTestContext", "overall", "run_check", "run_selftest"]
