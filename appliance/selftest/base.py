"""What every self-test check receives and returns."""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import Config, resolve
from .probes import build_time, clock_synchronised, service_status_text
from .reference import REFERENCE_IMAGE, REFERENCE_JSON

GIB = 1024 ** 3


class Outcome(enum.IntEnum):
    """A check's verdict; ordered so that the worst is the largest."""

    PASS = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class CheckResult:
    """One row of the self-test table: check name, outcome, what was seen, and the fix."""

    name: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def as_json(self) -> dict:
        """The row as a JSON-ready mapping."""
        return {"check": self.name, "outcome": self.outcome.name, "detail": self.detail, "fix": self.fix}


def passed(name: str, detail: str) -> CheckResult:
    """A PASS row."""
    return CheckResult(name, Outcome.PASS, detail)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    """A WARN row with the fix."""
    return CheckResult(name, Outcome.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    """A FAIL row with the fix."""
    return CheckResult(name, Outcome.FAIL, detail, fix)


@dataclass
class SelfTestContext:
    """The unit's config and the probes the checks use (tests replace the probes)."""

    cfg: Config
    service_user: str = "appliance"
    service_uid: int | None = None  # set when checking a unit inside another root (provisioning)
    service_unit: str = "appliance.service"
    min_free_bytes: int = 1 * GIB
    warn_free_bytes: int = 4 * GIB
    camera_timeout_s: float = 15.0
    broker_timeout_s: float = 10.0
    cert_warn_days: int = 30
    reference_image: Path = REFERENCE_IMAGE
    reference_json: Path = REFERENCE_JSON
    now: Callable[[], float] = time.time
    build_time: Callable[[], float] = build_time
    clock_synchronised: Callable[[], "bool | None"] = clock_synchronised
    service_status: Callable[[str], "str | None"] = service_status_text
    hailo_report: Callable[[], object] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def data_dir(self) -> Path:
        """The unit's state directory ([unit] data_dir)."""
        return resolve(self.cfg.unit.data_dir)

    def engine(self):
        """The unit's FaceEngine, built once (models hash-checked on load); :meth:`close` releases it."""
        if "engine" not in self._cache:
            from ..vision.engine import FaceEngine  # noqa: PLC0415 - loads the inference runtime

            self._cache["engine"] = FaceEngine.from_config(self.cfg)
            self._cache["owned"] = True
        return self._cache["engine"]

    def lend_engine(self, engine) -> None:
        """Use an engine the caller already loaded (and keeps, and closes)."""
        self._cache["engine"] = engine

    def close(self) -> None:
        """Release the engine if this context built it."""
        if self._cache.pop("owned", False):
            self._cache.pop("engine").close()
