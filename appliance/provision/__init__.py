"""`appliance provision`: from an installed package to a commissioned unit, idempotent and resumable.

Steps, in order, each safe to run again (it checks before it writes, and writes atomically):
config (board profile + unit id + trusted authorities), keys, certificates (van CA, unit,
broker, console, tablets, broker ACL), officers (the console's), services (enabled), and
commissioning (self-test, then a signed record whose hash goes into the audit log). An
interrupted run is resumed by running it again; a run with nothing new to do changes nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .certs import certificates
from .commission import commission, verify_record
from .layout import Root
from .plan import ProvisionPlan, load_plan, parse_plan
from .services import officers, services
from .steps import StepResult, unit_keys, write_config

Step = Callable[[Root, ProvisionPlan], StepResult]
STEPS: dict[str, Step] = {"config": write_config, "keys": unit_keys, "certificates": certificates,
                          "officers": officers}


def provision(plan: ProvisionPlan, root: Path = Path("/"),
              report: Callable[[StepResult], None] = lambda result: None) -> tuple[list[StepResult], list]:
    """Run every step against ``root``; return the step results and the self-test results."""
    where = Root(Path(root))
    done: list[StepResult] = []
    for step in STEPS.values():
        done.append(step(where, plan))
        report(done[-1])
    restart = any(r.changed for r in done if r.step in ("config", "certificates"))
    done.append(services(where, plan, restart=restart))
    report(done[-1])
    result, selftest_results = commission(where, plan)
    done.append(result)
    report(result)
    return done, selftest_results


__all__ = ["STEPS", "ProvisionPlan", "StepResult", "load_plan", "parse_plan", "provision", "verify_record"]
