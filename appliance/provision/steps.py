"""Provisioning steps that write the unit's config and keys."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from ..config import parse_config
from ..errors import ConfigError
from ..keystore.file import FileKeyStore, fingerprint
from .layout import CONFIG, DATA_DIR, MODELS_DIR, MQTT_DIR, UNIT_USER, Root, chown_tree, ensure_dir, put
from .plan import ProvisionPlan


@dataclass(frozen=True)
class StepResult:
    """One provisioning step: did it change anything, what it found or did, and a warning if any."""

    step: str
    changed: bool
    detail: str
    warning: str = ""


def render_config(root: Root, plan: ProvisionPlan) -> str:
    """The unit's appliance.toml: the board profile (comments kept) with this unit's values."""
    profile = root.shared("profiles", f"{plan.unit.profile}.toml")
    if not profile.exists():
        raise ConfigError(f"no board profile {plan.unit.profile!r} ({profile})",
                          fix="choose one of: " + ", ".join(p.stem for p in profile.parent.glob("*.toml")))
    doc = tomlkit.parse(profile.read_text())
    fixed = {"unit": {"id": plan.unit.id, "data_dir": DATA_DIR},
             "inference": {"models_dir": MODELS_DIR},
             "watchlist": {"trusted_authorities": list(plan.authorities)},
             "mqtt": {"enabled": True, "ca_file": f"{MQTT_DIR}/ca.crt", "cert_file": f"{MQTT_DIR}/unit.crt",
                      "key_file": f"{MQTT_DIR}/unit.key"}}
    for source in (fixed, plan.config):
        for section, values in source.items():
            table = doc.setdefault(section, tomlkit.table())
            if "backend" in values and table.get("backend") != values["backend"]:
                table.clear()  # another backend: the profile's keys for the old one do not apply
            for key, value in values.items():
                table[key] = value
    header = (f"# Written by `appliance provision` for unit {plan.unit.id} from board profile "
              f"{plan.unit.profile}.\n# Change it through the provisioning file and run provision again.\n")
    return header + tomlkit.dumps(doc)


def write_config(root: Root, plan: ProvisionPlan) -> StepResult:
    """Render, validate strictly, and install /etc/appliance/appliance.toml (0644 root)."""
    text = render_config(root, plan)
    parse_config(tomllib.loads(text), Path(CONFIG))  # ConfigError names the key: nothing written
    ensure_dir(root("/etc/appliance"), 0o755, 0, 0)
    changed = put(root(CONFIG), text.encode(), 0o644, 0, 0)
    return StepResult("config", changed, f"{CONFIG} from profile {plan.unit.profile}, unit {plan.unit.id}, "
                                         f"{len(plan.authorities)} trusted authorit{'y' if len(plan.authorities) == 1 else 'ies'}")


def unit_keys(root: Root, plan: ProvisionPlan) -> StepResult:
    """The unit's signing key and age identity: made once, kept on every later run."""
    uid, gid = root.uid(UNIT_USER), root.gid(UNIT_USER)
    changed = ensure_dir(root(DATA_DIR), 0o700, uid, gid)
    store = FileKeyStore(root(DATA_DIR) / "keys")
    made = not store.exists()
    if made:
        store.init()
    changed = chown_tree(store.root, uid, gid) or changed or made
    seen = f"signing key {fingerprint(store.signing_public_raw())}, age recipient {store.age_recipient()[:20]}..."
    return StepResult("keys", changed, ("made " if made else "kept ") + seen)
