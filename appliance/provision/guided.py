"""The guided (interactive) mode: asks for what the provisioning file does not say, and saves the
answers so that an interrupted session resumes without asking again."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Callable

import tomlkit

from .layout import Root, put
from .plan import PROVISION_DIR, ProvisionPlan, parse_plan

PLAN_FILE = f"{PROVISION_DIR}/plan.toml"
Ask = Callable[..., str]


def saved_answers(root: Root) -> dict:
    """The answers of an earlier (maybe interrupted) guided session, or {}."""
    path = root(PLAN_FILE)
    return tomllib.loads(path.read_text()) if path.exists() else {}


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


def _ask_missing(data: dict, profiles: list[str], ask: Ask) -> dict:
    unit = data.setdefault("unit", {})
    if "id" not in unit:
        unit["id"] = ask("Unit id (lowercase letters, digits, dashes; also its MQTT certificate name)")
    if "profile" not in unit:
        unit["profile"] = ask("Board profile", choices=profiles, default=profiles[0])
    if not data.get("authorities"):
        data["authorities"] = _words(ask("Authority public key(s) that sign watchlists (ed25519:..., "
                                         "space separated; `appliance authority show` in the back office)"))
    certs = data.setdefault("certificates", {})
    if "tablets" not in certs:
        certs["tablets"] = _words(ask("Tablet names (space separated)", default="tablet-01"))
    if "officers" not in data:
        ids = _words(ask("Officer ids allowed to adjudicate (space separated, empty for none)", default=""))
        data["officers"] = [{"id": i} for i in ids]
    return data


def guided_plan(root: Root, start: dict, profiles: list[str], ask: Ask) -> ProvisionPlan:
    """Fill ``start`` from saved answers and questions; validate; save (0600) for a resumed session."""
    data = {**saved_answers(root), **start}
    data = _ask_missing(data, profiles, ask)
    plan = parse_plan(data, Path(PLAN_FILE))
    put(root(PLAN_FILE), tomlkit.dumps(data).encode(), 0o600, 0, 0)
    return plan
