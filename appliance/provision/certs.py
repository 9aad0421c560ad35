"""The van CA and its certificates (deploy/make-van-certs.sh), installed where each user reads them."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import KeyStoreError
from .layout import (BROKER_DIR, BROKER_USER, CONSOLE_DIR, CONSOLE_USER, MQTT_DIR, PACKAGE, UNIT_USER, Root,
                     ensure_dir, put)
from .plan import ProvisionPlan
from .steps import StepResult

SCRIPT = PACKAGE / "data" / "make-van-certs.sh"


def acl(plan: ProvisionPlan) -> str:
    """The broker ACL for this van: the unit's own topics; tablets and consoles read and adjudicate."""
    unit = plan.unit.id
    lines = ["# Van broker ACL written by `appliance provision` (format: deploy/mosquitto/acl).", "",
             f"user {unit}"] + [f"topic write lfr/v1/{unit}/{t}" for t in ("alert", "status", "heartbeat")]
    lines.append(f"topic read lfr/v1/{unit}/adjudication")
    for client in plan.certificates.tablets + plan.certificates.consoles:
        lines += ["", f"user {client}"] + [f"topic read lfr/v1/{unit}/{t}" for t in ("alert", "status", "heartbeat")]
        lines.append(f"topic write lfr/v1/{unit}/adjudication")
    return "\n".join(lines) + "\n"


def _script(out: Path, plan: ProvisionPlan, add: bool) -> None:
    c = plan.certificates
    cmd = ["bash", str(SCRIPT), str(out), "--units", plan.unit.id, "--tablets", " ".join(c.tablets),
           "--consoles", " ".join(c.consoles), "--broker-san", c.broker_san, "--days", str(c.days)]
    proc = subprocess.run(cmd + (["--add"] if add else []), capture_output=True, text=True)
    if proc.returncode != 0:
        raise KeyStoreError(f"make-van-certs.sh failed: {proc.stderr.strip()[:300]}",
                            fix=f"put the van CA (ca.crt, ca.key) back in {c.ca_dir} to issue new certificates")


def van_ca(root: Root, plan: ProvisionPlan) -> tuple[Path, bool]:
    """The CA folder with every certificate this plan names; made or completed as needed."""
    ca = root(plan.certificates.ca_dir)
    names = ["broker", plan.unit.id, *plan.certificates.tablets, *plan.certificates.consoles]
    if not (ca / "ca.crt").exists():
        partial = ca.with_name(f".{ca.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        _script(partial, plan, add=False)
        ensure_dir(ca.parent, 0o700, 0, 0)
        partial.rename(ca)  # the whole CA appears at once: an interrupted run starts it again
        return ca, True
    missing = [n for n in names if not (ca / f"{n}.crt").exists()]
    if missing:
        _script(ca, plan, add=True)
    return ca, bool(missing)


def _install(root: Root, ca: Path, files: dict[str, tuple[str, int, str | None]]) -> bool:
    """Copy CA files to unit paths: {unit path: (file in the CA folder, mode, owning user)}."""
    changed = False
    for dest, (name, mode, user) in files.items():
        changed = put(root(dest), (ca / name).read_bytes(), mode, root.uid(user) if user else 0,
                      root.gid(user) if user else 0) | changed
    return changed


def certificates(root: Root, plan: ProvisionPlan) -> StepResult:
    """Issue (from the van CA) and install the unit, broker, console and tablet certificates, and the ACL."""
    ca, issued = van_ca(root, plan)
    unit, console = plan.unit.id, (plan.certificates.consoles or [None])[0]
    broker_user = BROKER_USER if root.uid(BROKER_USER) is not None else None
    changed = ensure_dir(root(MQTT_DIR), 0o750, 0, root.gid(UNIT_USER)) | issued
    changed |= ensure_dir(root(BROKER_DIR), 0o750, 0, root.gid(broker_user) if broker_user else 0)
    files = {f"{MQTT_DIR}/ca.crt": ("ca.crt", 0o644, None), f"{MQTT_DIR}/unit.crt": (f"{unit}.crt", 0o644, None),
             f"{MQTT_DIR}/unit.key": (f"{unit}.key", 0o600, UNIT_USER),
             f"{BROKER_DIR}/ca.crt": ("ca.crt", 0o644, None), f"{BROKER_DIR}/broker.crt": ("broker.crt", 0o644, None),
             f"{BROKER_DIR}/broker.key": ("broker.key", 0o600, broker_user)}
    if console:
        changed |= ensure_dir(root(CONSOLE_DIR), 0o750, 0, root.gid(CONSOLE_USER))
        changed |= ensure_dir(root(f"{CONSOLE_DIR}/mqtt"), 0o750, 0, root.gid(CONSOLE_USER))
        files.update({f"{CONSOLE_DIR}/mqtt/ca.crt": ("ca.crt", 0o644, None),
                      f"{CONSOLE_DIR}/mqtt/console.crt": (f"{console}.crt", 0o644, None),
                      f"{CONSOLE_DIR}/mqtt/console.key": (f"{console}.key", 0o600, CONSOLE_USER)})
    for tablet in plan.certificates.tablets:
        folder = f"{plan.certificates.tablet_dir}/{tablet}"
        changed |= ensure_dir(root(folder), 0o700, 0, 0)
        files.update({f"{folder}/ca.crt": ("ca.crt", 0o644, None), f"{folder}/{tablet}.crt": (f"{tablet}.crt", 0o644, None),
                      f"{folder}/{tablet}.key": (f"{tablet}.key", 0o600, None)})
    changed |= _install(root, ca, files)
    changed |= put(root(f"{BROKER_DIR}/acl"), acl(plan).encode(), 0o644, 0, 0)
    changed |= put(root(f"{BROKER_DIR}/mosquitto.conf"), root.shared("mosquitto", "mosquitto.conf").read_bytes(), 0o644, 0, 0)
    tablets = ", ".join(plan.certificates.tablets) or "none"
    return StepResult("certificates", changed, f"van CA {plan.certificates.ca_dir}; unit {unit}, broker, "
                                               f"console {console or 'none'}, tablets {tablets}",
                      warning=f"move {plan.certificates.ca_dir}/ca.key off the van once provisioning is done")
