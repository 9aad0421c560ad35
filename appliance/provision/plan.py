"""The provisioning file: everything `appliance provision --non-interactive` needs, strictly checked.

Example (docs/technician.md has the full one)::

    [unit]
    id = "van-07"
    profile = "rpi5-hailo8l"            # a board profile: /usr/share/lfr-appliance/profiles/<name>.toml

    authorities = ["ed25519:Jk3...="]   # the force's watchlist authority key(s)

    [certificates]
    tablets = ["tablet-01"]
    consoles = ["console-01"]
    broker_san = "DNS:van-broker,DNS:localhost,IP:127.0.0.1,IP:10.0.0.1"

    [[officers]]
    id = "PC-4521"
    name = "A. Officer"

    [config.capture]                    # optional: any config keys, merged over the profile
    source = "rtsp://10.0.0.20/stream"
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from ..config import Section, _format_errors
from ..errors import ConfigError

IDENTITY = r"^[a-z0-9][a-z0-9-]{1,62}$"
UNITS = ("mosquitto.service", "appliance.service", "appliance-console.service")
PROVISION_DIR = "/var/lib/lfr-provision"


class UnitPlan(Section):
    """Which unit this is and which board it runs on."""

    id: str = Field(pattern=IDENTITY, description="the unit id; also its MQTT certificate CN")
    profile: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$", description="board profile name (hw/*.toml)")


class CertificatePlan(Section):
    """The van CA and the certificates issued from it (deploy/make-van-certs.sh)."""

    ca_dir: str = Field(f"{PROVISION_DIR}/van-ca", description="made here when absent; move ca.key off the van after")
    tablets: list[str] = Field(default_factory=list, max_length=32)
    consoles: list[str] = Field(default_factory=lambda: ["console-01"], max_length=4)
    broker_san: str = Field("DNS:van-broker,DNS:localhost,IP:127.0.0.1", pattern=r"^[A-Za-z0-9:.,*-]{3,400}$")
    days: int = Field(400, ge=30, le=3650)
    tablet_dir: str = Field(f"{PROVISION_DIR}/tablets", description="each tablet's certificate, key and CA, to load onto it")

    @model_validator(mode="after")
    def _names(self) -> "CertificatePlan":
        import re  # noqa: PLC0415

        bad = [n for n in self.tablets + self.consoles if not re.match(IDENTITY, n)]
        if bad:
            raise ValueError(f"certificate names {bad} must be lowercase letters, digits and dashes")
        if len(set(self.tablets + self.consoles)) != len(self.tablets + self.consoles):
            raise ValueError("tablet and console names must be distinct")
        return self


class OfficerPlan(Section):
    """An officer who may adjudicate alerts on the console."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}$")
    name: str = Field("", max_length=100)


class ProvisionPlan(Section):
    """The whole provisioning file."""

    unit: UnitPlan
    authorities: list[str] = Field(min_length=1, max_length=16, description="ed25519:<base64> keys")
    certificates: CertificatePlan = CertificatePlan()
    officers: list[OfficerPlan] = Field(default_factory=list, max_length=200)
    services: list[Literal[UNITS]] = Field(default_factory=lambda: list(UNITS))  # type: ignore[valid-type]
    selftest_must_pass: bool = Field(True, description="no commissioning record while a check FAILs")
    config: dict[str, dict] = Field(default_factory=dict, description="config keys merged over the profile")

    @model_validator(mode="after")
    def _authorities(self) -> "ProvisionPlan":
        from ..authority import parse_public  # noqa: PLC0415
        from ..errors import ApplianceError  # noqa: PLC0415

        for text in self.authorities:
            try:
                parse_public(text)
            except ApplianceError as exc:
                raise ValueError(f"authority key {text[:24]!r}: {exc.message}") from None
        if self.unit.id in self.certificates.tablets + self.certificates.consoles:
            raise ValueError("the unit id must differ from every tablet and console name")
        return self


def parse_plan(data: dict, path: Path) -> ProvisionPlan:
    """Validate a parsed provisioning file; ConfigError names file, key and reason."""
    try:
        return ProvisionPlan.model_validate(data)
    except (ValidationError, ValueError) as exc:
        message = _format_errors(path, exc) if isinstance(exc, ValidationError) else f"{path}: {exc}"
        raise ConfigError(message, fix=f"edit {path} (docs/technician.md, 'The provisioning file')") from None


def load_plan(path: str | Path) -> ProvisionPlan:
    """Read and validate a provisioning file."""
    path = Path(path)
    try:
        return parse_plan(tomllib.loads(path.read_text()), path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the provisioning file: {exc.strerror}",
                          fix="pass an existing file with --file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", fix="fix the TOML syntax at the position given") from None
