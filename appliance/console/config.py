"""The console's own TOML configuration (not the unit's): strict, bounded, errors name file and key.

Example: deploy/console.example.toml. Sections: [console] (identity, HTTPS listener, state,
sessions, two-officer mode, retention), [mqtt] (the van broker's LAN listener and the
console's client certificate) and one [[units]] table per unit it serves, with the unit's
pinned public key (the line `appliance keys show` prints on the unit).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, KeyStoreError
from ..keyid import parse_public

IDENTITY = r"^[a-z0-9][a-z0-9-]{1,62}$"


class Section(BaseModel):
    """Base of every section: unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ConsoleSection(Section):
    """Identity, HTTPS listener, state directory, sessions and the officers' rules."""

    id: str = Field("console-01", pattern=IDENTITY, description="the CN of its MQTT client certificate")
    state_dir: str = Field("/var/lib/appliance-console", pattern=r"^[^\x00]{1,255}$")
    listen_host: str = Field("0.0.0.0", pattern=r"^[0-9A-Za-z.:-]{1,64}$")
    listen_port: int = Field(8443, ge=1, le=65535)
    tls_cert: str = "/etc/appliance-console/https.crt"
    tls_key: str = "/etc/appliance-console/https.key"
    retention_hours: float = Field(12.0, ge=0.01, le=24 * 31, description="images are forgotten after this")
    two_officer: bool = Field(False, description="a confirm needs a second, different officer (AI Act Art 14(5))")
    idle_timeout_s: int = Field(600, ge=30, le=86400, description="sign-out after this long without a request")
    session_max_s: int = Field(12 * 3600, ge=300, le=7 * 86400, description="sign-out after this long in any case")
    max_failed_pins: int = Field(5, ge=1, le=20, description="wrong PINs in a row that lock an officer id")
    lockout_s: int = Field(900, ge=10, le=7 * 86400, description="how long a locked officer id stays locked")
    heartbeat_stale_s: float = Field(90.0, ge=1.0, le=3600.0,
                                     description="a unit without a heartbeat for this long is shown stale")


class ConsoleMqtt(Section):
    """The van broker's LAN listener and the console's client certificate (CN = [console] id)."""

    host: str = "127.0.0.1"
    port: int = Field(8883, ge=1, le=65535)
    ca_file: str = "/etc/appliance-console/mqtt/ca.crt"
    cert_file: str = "/etc/appliance-console/mqtt/console.crt"
    key_file: str = "/etc/appliance-console/mqtt/console.key"
    keepalive_s: int = Field(15, ge=5, le=600)
    session_expiry_s: int = Field(2 * 86400, ge=60, le=30 * 86400,
                                  description="the broker keeps alerts for a stopped console this long")


class UnitEntry(Section):
    """One unit this console serves and its pinned public key."""

    id: str = Field(pattern=IDENTITY)
    public_key: str = Field(description="ed25519:<base64>, as `appliance keys show` prints it on the unit")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            parse_public(value, "unit public key")
        except KeyStoreError as exc:
            raise ValueError(f"{exc.message}; copy the 'signing key (ed25519)' line of `appliance keys show`") from None
        return value


class ConsoleConfig(Section):
    """The whole console configuration."""

    console: ConsoleSection = ConsoleSection()
    mqtt: ConsoleMqtt = ConsoleMqtt()
    units: list[UnitEntry] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _distinct_units(self) -> "ConsoleConfig":
        ids = [u.id for u in self.units]
        if len(set(ids)) != len(ids):
            raise ValueError("a unit is listed twice in [[units]]")
        return self


def _format(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {len(exc.errors())} invalid setting(s)"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        reason = "unknown key (check deploy/console.example.toml)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {path}: key '{key}': {reason}")
    return "\n".join(lines)


def load_console_config(path: str | Path) -> ConsoleConfig:
    """Read and validate the console TOML at ``path``; raise ConfigError naming file, key and reason."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the console config: {exc.strerror}",
                          fix="pass an existing file, e.g. deploy/console.example.toml") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", fix="fix the TOML syntax at the position given") from None
    try:
        return ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc), fix=f"edit {path}") from None
