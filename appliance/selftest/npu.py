"""NPU (Hailo): driver, library and firmware versions agree, and every HEF was compiled for this chip.

These are the field failures of the Hailo-8L AI Kit: HAILO_INVALID_DRIVER_VERSION after an
apt upgrade moved one of the three, and HAILO_INVALID_HEF for a HEF compiled for another
chip. The facts come from the Hailo backend (``appliance/inference/hailo.py``, which alone
imports ``hailo_platform``), through the first of these it provides:

    preflight(settings) -> str | None          # why the card cannot run the configured HEFs, or None
    device_report() -> HailoReport | None      # the versions and chips, judged here

(``preflight`` is the Hailo branch's function: library, driver and firmware versions, the
card's architecture against each HEF's chip, the HEFs' pins.) Until the backend provides one,
a unit configured for Hailo gets a WARN naming the seam. ``tests/test_selftest.py`` holds the
contract tests both must satisfy.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from .base import CheckResult, SelfTestContext, failed, passed, warned

NAME = "npu"
HAILO_MODULE = "appliance.inference.hailo"  # the one backend with an NPU; it alone imports hailo_platform
DEVICE_NODE = Path("/dev/hailo0")
REPORT_FUNCTION = "device_report"
PREFLIGHT_FUNCTION = "preflight"
VERSIONS_FIX = ("install matching HailoRT parts: sudo apt install --reinstall hailo-all (driver "
                "hailort-pcie-driver, library hailort, firmware), then reboot")
HEF_FIX = ("provision the HEFs compiled for this chip (Hailo Model Zoo, pinned in models/manifest.toml); "
           "a Hailo-8 HEF does not run on a Hailo-8L")


@dataclass(frozen=True)
class HailoReport:
    """What the Hailo backend reads from the device: versions, chip, and each HEF's target."""

    driver_version: str            # /sys/module/hailo_pci/version
    library_version: str           # hailo_platform / libhailort
    firmware_version: str          # Device.control.identify().firmware_version
    device_arch: str               # e.g. "HAILO8L"
    hef_arch: dict[str, str] = field(default_factory=dict)  # HEF file name -> the chip it targets


def _release(version: str) -> tuple[str, ...]:
    """'4.20.0' and 'v4.20.0 (release)' -> ('4', '20', '0')."""
    digits = version.strip().lstrip("v").split()[0] if version.strip() else ""
    return tuple(digits.split("."))


def wants_npu(ctx: SelfTestContext) -> bool:
    """True when the config names the Hailo backend."""
    return ctx.cfg.inference.backend == importlib.import_module(HAILO_MODULE).KEY


def backend_report():
    """The report from appliance.inference.hailo.device_report(), or NotImplemented when it does not exist."""
    module = importlib.import_module(HAILO_MODULE)
    function = getattr(module, REPORT_FUNCTION, None)
    return function() if callable(function) else NotImplemented


def from_preflight(ctx: SelfTestContext) -> CheckResult | None:
    """The backend's own preflight verdict (None when the backend has no preflight)."""
    preflight = getattr(importlib.import_module(HAILO_MODULE), PREFLIGHT_FUNCTION, None)
    if not callable(preflight):
        return None
    settings = ctx.cfg.inference if wants_npu(ctx) else None
    reason = preflight(settings)
    if reason is None:
        return passed(NAME, "driver, library and firmware versions agree and every HEF is compiled for this card "
                            "(Hailo preflight)")
    seen, _, fix = reason.partition(" (fix: ")
    return failed(NAME, seen, fix.rstrip(")") or VERSIONS_FIX)


def judge(report: HailoReport) -> CheckResult:
    """PASS when the three versions agree and every HEF targets this chip, else FAIL naming which."""
    versions = {"driver": report.driver_version, "library": report.library_version,
                "firmware": report.firmware_version}
    if len({_release(v) for v in versions.values()}) != 1:
        seen = ", ".join(f"{k} {v}" for k, v in versions.items())
        return failed(NAME, f"HailoRT versions disagree: {seen} (HAILO_INVALID_DRIVER_VERSION)", VERSIONS_FIX)
    wrong = {name: arch for name, arch in report.hef_arch.items() if arch.upper() != report.device_arch.upper()}
    if wrong:
        seen = ", ".join(f"{name} for {arch}" for name, arch in sorted(wrong.items()))
        return failed(NAME, f"HEF compiled for another chip than this {report.device_arch}: {seen} "
                            "(HAILO_INVALID_HEF)", HEF_FIX)
    return passed(NAME, f"{report.device_arch}: driver, library and firmware {report.library_version}; "
                        f"{len(report.hef_arch)} HEF(s) for this chip")


def check(ctx: SelfTestContext) -> CheckResult:
    """Judge the device report; WARN on a unit without the card (CPU board) or before the seam exists."""
    wants_hailo = wants_npu(ctx)
    if ctx.hailo_report is None and (wants_hailo or DEVICE_NODE.exists()):
        verdict = from_preflight(ctx)
        if verdict is not None:
            return verdict
    report = (ctx.hailo_report or backend_report)()
    if report is NotImplemented:
        if not wants_hailo and not DEVICE_NODE.exists():
            return warned(NAME, "no Hailo device here (not a Hailo unit)",
                          "nothing to do on a CPU board; on a Pi 5 AI Kit check the card and hailo_pci")
        return warned(NAME, f"the Hailo backend does not report versions yet (no "
                            f"{HAILO_MODULE}.{PREFLIGHT_FUNCTION}() or {REPORT_FUNCTION}())",
                      "check by hand: hailortcli fw-control identify; cat /sys/module/hailo_pci/version")
    if report is None:
        if wants_hailo:
            return failed(NAME, "[inference] names the Hailo backend but no Hailo device is present",
                          "seat the M.2 card, check `lsmod | grep hailo_pci` and /dev/hailo0, or use the rpi5-cpu profile")
        return warned(NAME, "no Hailo device here (not a Hailo unit)",
                      "nothing to do on a CPU board; on a Pi 5 AI Kit check the card and hailo_pci")
    return judge(report)
