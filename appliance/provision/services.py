"""Officers on the console (a seam until the console's library is merged) and the systemd units."""
from __future__ import annotations

import importlib
import shutil
import subprocess

from ..errors import ApplianceError
from .layout import Root
from .plan import ProvisionPlan
from .steps import StepResult

# The console (appliance/console/, its own branch) provides `appliance console officers add`;
# provisioning calls its library function, found here by name so that a unit without the
# console still provisions. Contract: add_officer(root_path, officer_id, name) -> bool (changed).
OFFICER_MODULE, OFFICER_FUNCTION = "appliance.console.officers", "add_officer"


def officer_function():
    """The console's add_officer, or None while the console is not installed."""
    try:
        module = importlib.import_module(OFFICER_MODULE)
    except ImportError:
        return None
    return getattr(module, OFFICER_FUNCTION, None)


def officers(root: Root, plan: ProvisionPlan) -> StepResult:
    """Register the plan's officers with the console (idempotent through the console's function)."""
    if not plan.officers:
        return StepResult("officers", False, "none listed in the provisioning file")
    add = officer_function()
    if add is None:
        return StepResult("officers", False, f"{len(plan.officers)} listed, not registered",
                          warning=f"the console's {OFFICER_MODULE}.{OFFICER_FUNCTION} is not installed: "
                                  "add them with `appliance console officers add` once it is")
    changed = False
    for officer in plan.officers:
        changed = bool(add(root.path, officer.id, officer.name)) or changed
    return StepResult("officers", changed, f"{len(plan.officers)} officer(s) registered with the console")


def _systemctl(root: Root, *args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("systemctl")
    if tool is None:
        raise ApplianceError("systemctl is not installed here", fix="provision a Debian / Raspberry Pi OS system")
    prefix = [] if root.is_live else [f"--root={root.path}"]
    return subprocess.run([tool, *prefix, *args], capture_output=True, text=True, timeout=120)


def services(root: Root, plan: ProvisionPlan, restart: bool = False) -> StepResult:
    """Enable the plan's units (and, on a running unit, (re)start them); unchanged when already enabled."""
    missing = [u for u in plan.services if _systemctl(root, "is-enabled", u).stdout.strip() != "enabled"]
    if missing:
        proc = _systemctl(root, "enable", *missing)
        if proc.returncode != 0:
            raise ApplianceError(f"systemctl enable {' '.join(missing)} failed: {proc.stderr.strip()[:300]}",
                                 fix="is the lfr-appliance package installed (it ships the units)?")
    live = root.is_live and shutil.os.path.isdir("/run/systemd/system")
    if live and (missing or restart):
        _systemctl(root, "restart", *plan.services)
    state = f"enabled {', '.join(missing)}" if missing else f"already enabled: {', '.join(plan.services)}"
    return StepResult("services", bool(missing), state + ("; (re)started" if live and (missing or restart) else ""))
