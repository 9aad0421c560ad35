"""Deployment and watchlist: the unit can take a signed deployment, and the active one can resume.

Read-only: the records are read, never purged here (an expired deployment is purged, with its
audit entries, by the service or `appliance deployment status`).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..authority import key_fingerprint, parse_public
from ..keystore import unit_keystore
from ..watchlist.deployment import window_end
from ..watchlist.records import DB_NAME, DeploymentRecord, DeploymentRecords
from .base import CheckResult, SelfTestContext, failed, passed, warned

NAME = "deployment"
TRUST_FIX = ("add the force's authority key to [watchlist] trusted_authorities "
             "(appliance provision, or `appliance authority show` in the back office)")


def _active_record(ctx: SelfTestContext) -> DeploymentRecord | None:
    if not (ctx.data_dir / DB_NAME).exists():
        return None
    return DeploymentRecords(ctx.data_dir).active()


def _judge_active(ctx: SelfTestContext, record: DeploymentRecord) -> CheckResult:
    """An active deployment: inside its window, bundle copy and key present, same embedder model."""
    now = datetime.fromtimestamp(ctx.now(), timezone.utc)
    keys = unit_keystore(ctx.cfg).deployment_names()
    seen = f"deployment {record.deployment_id} at {record.location!r}, {record.entry_count} entries, until {record.not_after}"
    if not Path(record.copy_path).is_file() or record.key_name not in keys:
        return failed(NAME, seen + ": its encrypted bundle copy or its key is missing, it cannot resume",
                      "end it (appliance deployment end) and start it again from the signed bundle")
    if record.model_id != ctx.engine().model_id:
        return failed(NAME, seen + f": built for {record.model_id}, the unit runs {ctx.engine().model_id}",
                      "ask the back office for a bundle carrying this unit's model, then restart the deployment")
    if now > window_end(record):
        return warned(NAME, seen + ": its window is over; it is purged at the next start",
                      "appliance deployment status (purges it, audited)")
    return passed(NAME, seen)


def check(ctx: SelfTestContext) -> CheckResult:
    """Trusted authorities parse; the active deployment (if any) can resume."""
    cfg = ctx.cfg
    authorities = [key_fingerprint(parse_public(text))[:16] for text in cfg.watchlist.trusted_authorities]
    record = _active_record(ctx)
    if record is not None:
        return _judge_active(ctx, record)
    if not authorities:
        return failed(NAME, "no authority is trusted: no watchlist bundle can be accepted, so nothing is matched",
                      TRUST_FIX)
    return passed(NAME, f"no deployment active; ready for one signed by {', '.join(authorities)}")
