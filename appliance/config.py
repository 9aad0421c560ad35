"""The appliance configuration: one TOML file, strictly validated.

Unknown keys are errors, numbers carry bounds, and every error names the file,
the dotted key and the reason (Klipper's habit: an option nobody reads is an error).
Each section is a pydantic model; a later subsystem adds its own section here.
"""
from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from . import capture, inference
from .errors import ConfigError
from .paths import resolve  # noqa: F401 - re-exported: config paths resolve the same way everywhere
from .settings import Section
from .vision.settings import DEADLINE_KEYS, DetectConfig, QualityConfig, TrackConfig  # noqa: F401 - re-exported


UNKNOWN_BACKEND = "unknown_backend"


def _tagged_union(classes: tuple[type[Section], ...], default: str) -> Any:
    """A union of backend settings told apart by their ``backend`` key (``default`` when absent)."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            return value.get("backend", default)
        return getattr(value, "backend", None)

    keys = [cls.model_fields["backend"].default for cls in classes]
    choices = ", ".join(f"'{k}'" for k in keys[:-1]) + f" or '{keys[-1]}'"
    members = tuple(Annotated[cls, Tag(key)] for cls, key in zip(classes, keys))
    return Annotated[Union[members], Discriminator(tag, custom_error_type=UNKNOWN_BACKEND,
                                                   custom_error_message=f"Input should be {choices}")]


CaptureConfig = _tagged_union(capture.settings_classes(), capture.DEFAULT)
InferenceConfig = _tagged_union(inference.settings_classes(), inference.AUTO)


class UnitConfig(Section):
    """Identity of this van unit and where it keeps its state."""

    id: str = Field("van-dev-01", pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    data_dir: str = "var/appliance"

    @field_validator("data_dir")
    @classmethod
    def _usable_dir(cls, value: str) -> str:
        """A path the unit can create and write under: not empty, no NUL, within PATH_MAX / NAME_MAX,
        and not a file, device or other non-directory (checked where it, or its nearest parent, exists)."""
        if not value or "\x00" in value:
            raise ValueError("must be a non-empty path without NUL characters")
        if len(value.encode("utf-8", "surrogatepass")) > 1024 or any(len(p) > 255 for p in value.split("/")):
            raise ValueError("is too long (at most 1024 bytes, 255 per path component)")
        path = resolve(value)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ValueError(f"{existing} exists and is not a directory (a file or a device)")
        return value


def _check_floor(threshold: float) -> None:
    """Refuse a threshold below the floor of the unit model's accuracy card (G7)."""
    from .errors import ApplianceError  # noqa: PLC0415
    from .thresholds import rule_for, unit_model_id  # noqa: PLC0415 - reads the shipped card

    try:
        rule = rule_for(unit_model_id())
    except ApplianceError as exc:
        raise ValueError(f"cannot check the threshold against the accuracy card: {exc.message}") from None
    if threshold < rule.floor:
        raise ValueError(
            f"threshold {threshold} is below the model's floor {rule.floor:.3f} from its accuracy card "
            f"(expected FPIR {rule.expected_fpir(threshold, rule.floor_list_size):.2%} on a "
            f"{rule.floor_list_size}-entry list, target {rule.target_fpir:.2%}); remove the key to use "
            "the card's threshold for the list")


class MatchConfig(Section):
    """Matching and the alert decision."""

    threshold: float | None = Field(
        None, ge=0.0, le=1.0,
        description="unset: the accuracy card's threshold for the watchlist's size (G7); set, it may only be "
                    "higher: below the card's floor it is refused here, and below the card's threshold for "
                    "the list at deployment start")
    hits_needed: int = Field(2, ge=1, le=50, description="N of the last M good frames")
    embed_budget: int = Field(2, ge=0, le=256,
                              description="faces embedded per frame, in priority.py's order (0: all)")
    embed_share: float = Field(0.45, ge=0.0, le=1.0, description="if set, embed as many faces as fit this share "
                               "of the frame interval at the measured cost per face (at least embed_budget)")
    embed_max: int = Field(8, ge=1, le=256, description="... and at most this many")
    window: int = Field(5, ge=1, le=100, description="M, the last good frames considered")
    near_miss_margin: float = Field(0.1, ge=0.0, le=1.0, description="a score this close below the threshold is "
                                    "a near miss: its track is re-embedded soon (embedding priority, priority.py)")
    far_miss_limit: int = Field(3, ge=0, le=100, description="misses further below after which a track is "
                                "embedded last (0: never)")
    recheck_frames: int = Field(30, ge=1, le=10000, description="... unless this many frames have passed")
    recheck_growth: float = Field(1.25, ge=1.0, le=10.0, description="... or its face grew this much")
    threads: int = Field(2, ge=1, le=8, description="threads splitting the 1:N screen of the watchlist rows")
    repeat_window_s: float = Field(60.0, ge=0.0, le=3600.0, description="a subject alerted on this camera within "
                                   "this many seconds (capture time) gives a repeat sighting, not a new alarm (0: off)")
    evidence: Literal["frames", "template"] = Field(
        "frames", description="frames: N of the last M good frames; template: also the track's quality-weighted "
                              "template (measured worse, FPIR not on the accuracy card: for `bench --only evidence`)")

    @model_validator(mode="after")
    def _check(self) -> "MatchConfig":
        if self.threshold is not None:
            _check_floor(self.threshold)
        if self.hits_needed > self.window:
            raise ValueError("hits_needed must not exceed window")
        return self


class RunnerConfig(Section):
    """Pipeline threads and queues."""

    queue_size: int = Field(1, ge=1, le=64,
                            description="frames waiting for analysis; a live source drops the oldest (1: only the newest waits)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class MqttConfig(Section):
    """MQTT to the van broker: TLS client certificate, durable outbox, heartbeat (docs/mqtt.md)."""

    enabled: bool = Field(False, description="publish alerts to the van broker (true on every unit)")
    host: str = "127.0.0.1"
    port: int = Field(8884, ge=1, le=65535, description="the broker's loopback TLS listener")
    ca_file: str = "/etc/appliance/mqtt/ca.crt"
    cert_file: str = "/etc/appliance/mqtt/unit.crt"
    key_file: str = "/etc/appliance/mqtt/unit.key"
    client_id: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,64}$", description="empty: lfr-<unit id>")
    keepalive_s: int = Field(15, ge=5, le=600)
    reconnect_min_s: float = Field(0.5, ge=0.05, le=60.0)
    reconnect_max_s: float = Field(30.0, ge=0.1, le=600.0)
    max_inflight: int = Field(20, ge=1, le=1000, description="alerts handed to the client unacked")
    outbox_max_age_s: float = Field(3600.0, ge=10.0, le=30 * 86400.0,
                                    description="older undelivered alerts are expired and audited")
    refused_retry_s: float = Field(30.0, ge=0.1, le=3600.0, description="retry delay after a broker refusal")
    heartbeat_interval_s: float = Field(30.0, ge=0.2, le=3600.0)
    adjudication_max_bytes: int = Field(4096, ge=256, le=65536)
    console_keys: list[str] = Field(default_factory=list, max_length=8,
                                    description="public keys of the officers' consoles whose signed "
                                                "adjudications this unit accepts, ed25519:<base64> "
                                                "(`appliance console keys show`)")
    session_expiry_s: int = Field(2 * 86400, ge=60, le=30 * 86400,
                                  description="the broker keeps adjudications for an offline unit this long")
    adjudication_rate_per_s: float = Field(5.0, ge=0.1, le=1000.0,
                                           description="adjudications a second per sender, on average")
    adjudication_burst: int = Field(50, ge=1, le=10000, description="... and in one burst")

    @model_validator(mode="after")
    def _backoff_order(self) -> "MqttConfig":
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @model_validator(mode="after")
    def _console_keys(self) -> "MqttConfig":
        from .errors import KeyStoreError  # noqa: PLC0415
        from .keyid import parse_public  # noqa: PLC0415

        for text in self.console_keys:
            try:
                parse_public(text, "console key")
            except KeyStoreError as exc:
                raise ValueError(f"{exc.message}; copy the line `appliance console keys show` prints") from None
        return self


class WatchlistConfig(Section):
    """Signed, encrypted watchlist bundles and the deployment lifecycle (docs/watchlist.md)."""

    trusted_authorities: list[str] = Field(default_factory=list, max_length=16,
                                           description="authority public keys, ed25519:<base64>")
    max_bundle_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, le=2 * 1024 ** 3)
    poll_seconds: float = Field(1.0, ge=0.1, le=60.0, description="how often the runner re-reads the record")


class KeystoreConfig(Section):
    """Where the unit's keys live: one key store, opened once, signs everything (docs/architecture.md)."""

    backend: str = Field(default_factory=lambda: _keystores()[0])

    @field_validator("backend")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in _keystores():
            raise ValueError(f"unknown key store '{value}': choose one of {', '.join(_keystores())}")
        return value


def _keystores() -> list[str]:
    from .keystore import KEYSTORES  # noqa: PLC0415 - the registry names the key stores

    return list(KEYSTORES)


class AuditConfig(Section):
    """The signed, tamper-evident audit log (docs/audit.md)."""

    db: str = Field("audit.db", pattern=r"^[^\x00]{1,255}$",
                    description="SQLite file; relative paths are under [unit] data_dir")
    head_every_entries: int = Field(1000, ge=1, le=1_000_000, description="sign a tree head every N entries")
    head_every_s: float = Field(60.0, ge=1.0, le=86400.0, description="... or every T seconds")
    counters_every_s: float = Field(10.0, ge=1.0, le=3600.0,
                                    description="one counters event per period (a killed run loses at most one period)")


class BoardConfig(Section):
    """The board profile a unit was installed from (hw/*.toml): devices, fallbacks, expected speed."""

    profile: str = Field("", pattern=r"^[a-z0-9-]{0,40}$", description="the hw/ profile name, e.g. rpi5-hailo8l")
    devices: list[str] = Field(default_factory=list, max_length=8,
                               description="device nodes the board must have, e.g. /dev/hailo0")
    inference_fallback: str = Field(
        "none", description="the inference backend to run when the configured one is unavailable (none: refuse to start)")
    capture_fallback: str = Field("none", description="the capture backend to run instead (none: refuse to start)")
    expected_fps: float = Field(0.0, ge=0.0, le=240.0, description="frames/s the profile promises (0: not stated)")
    expected_capture_to_alert_ms: float = Field(0.0, ge=0.0, le=60000.0)

    @field_validator("inference_fallback")
    @classmethod
    def _inference_registered(cls, value: str) -> str:
        if value != "none" and value not in inference.BACKENDS:
            raise ValueError(f"must be none or one of {', '.join(inference.BACKENDS)}")
        return value

    @field_validator("capture_fallback")
    @classmethod
    def _capture_registered(cls, value: str) -> str:
        if value != "none" and value not in capture.CAPTURES:
            raise ValueError(f"must be none or one of {', '.join(capture.CAPTURES)}")
        return value


class RetentionConfig(Section):
    """How long the unit keeps what it must not keep for long (GOVERNANCE G1, G3; docs/architecture.md)."""

    alert_images_hours: float = Field(24.0, ge=0.05, le=720.0,
                                      description="an alert's face crop and reference thumbnail are deleted "
                                                  "after this at the latest, delivered or not")
    sweep_every_s: float = Field(60.0, ge=1.0, le=3600.0, description="how often the retention purge runs")


class Config(Section):
    """The whole appliance configuration."""

    unit: UnitConfig = UnitConfig()
    capture: CaptureConfig = Field(default_factory=lambda: capture.capture_module(capture.DEFAULT).Settings())
    inference: InferenceConfig = Field(default_factory=inference.AutoSettings)
    detect: DetectConfig = DetectConfig()
    quality: QualityConfig = QualityConfig()
    match: MatchConfig = MatchConfig()
    track: TrackConfig = TrackConfig()
    runner: RunnerConfig = RunnerConfig()
    mqtt: MqttConfig = MqttConfig()
    watchlist: WatchlistConfig = WatchlistConfig()
    keystore: KeystoreConfig = KeystoreConfig()
    audit: AuditConfig = AuditConfig()
    board: BoardConfig = BoardConfig()


    retention: RetentionConfig = RetentionConfig()

    source_path: str | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_gate_bypass(cls, data: Any) -> Any:
        if isinstance(data, dict) and "demo_watchlist" in data:
            raise ValueError(
                "[demo_watchlist] is not a unit setting: a unit matches only the watchlist of an active, "
                "signed deployment (G2, G10); remove the section and start a deployment with "
                "`appliance deployment start` (the demo builds and signs its own bundle)")
        return data


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {len(exc.errors())} invalid setting(s)"]
    for err in exc.errors():
        loc = _drop_tags(err["loc"]) + (("backend",) if err["type"] == UNKNOWN_BACKEND else ())
        key = ".".join(str(p) for p in loc) or "(top level)"
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling against deploy/appliance.example.toml)"
        lines.append(f"  {path}: key '{key}': {reason}")
    return "\n".join(lines)


def _drop_tags(loc: tuple) -> tuple:
    """The dotted key as written in the file: without the union member pydantic names
    after [capture] / [inference] (e.g. inference.hailo.threads -> inference.threads)."""
    if len(loc) >= 2 and loc[0] in ("capture", "inference"):
        return (loc[0], *loc[2:])
    return loc


def parse_config(data: dict, path: Path) -> Config:
    """Validate an already-parsed TOML mapping; raise ConfigError naming file, key and reason."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc),
                          fix=f"edit {path} and run `appliance validate-config {path}`") from None
    return cfg.model_copy(update={"source_path": str(path)})


def load_config(path: str | Path) -> Config:
    """Read and validate the TOML config at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}",
                          fix="pass an existing file, e.g. deploy/appliance.example.toml") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}",
                          fix="fix the TOML syntax at the position given") from None
    return parse_config(data, path)


def config_hash(path: str | Path) -> str:
    """SHA-256 of the config file bytes, recorded in the audit log at start."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
