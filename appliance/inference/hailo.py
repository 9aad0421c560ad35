"""Hailo-8 / Hailo-8L NPU through HailoRT's ``hailo_platform`` (runs on the device; docs/hardware.md).

One :class:`HailoDevice` (a context-managed ``VDevice`` with the ROUND_ROBIN model scheduler
and one group id) carries the detector and the embedder HEFs; each network is an
``InferModel`` configured once and run request by request (bindings, ``wait_for_async_ready``,
``run_async`` with a completion callback, ``job.wait``). Before the first network loads the
library, driver and firmware versions are compared and the HEF's pinned chip is checked
against the device, so a mismatch is refused with the fix instead of failing inside HailoRT.
The SDK is imported in this file only; tests drive it through ``tests/fakes/hailo_platform.py``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import BackendUnavailable, InputError, ModelError
from ..modelstore import ModelSpec, load_manifest, model_path
from ..paths import resolve
from .base import BackendSettings

KEY = "hailo"
AUTO_PRIORITY = 0  # tried first by "auto": the NPU is the reason the unit has the card
DEVICE_NODE = Path("/dev/hailo0")
DRIVER_VERSION_FILE = Path("/sys/module/hailo_pci/version")
# Which device architectures run a HEF compiled for a chip (HailoRT's hef_arch_to_device_compatible_archs).
RUNS_ON = {"hailo8l": ("HAILO8L", "HAILO8"), "hailo8": ("HAILO8",)}
REINSTALL = "install one matching set: `sudo apt install --reinstall hailo-all`, then reboot"


class Settings(BackendSettings):
    """[inference] backend = "hailo": SCRFD and ArcFace HEFs on a Hailo-8L or Hailo-8 (one VDevice)."""

    backend: Literal[KEY] = KEY
    chip: Literal["hailo8l", "hailo8"] = Field("hailo8l", description="the card: Hailo-8L (AI Kit) or Hailo-8")
    detector: Literal["scrfd_2.5g", "scrfd_10g"] = "scrfd_2.5g"
    embedder: Literal["arcface_mobilefacenet", "arcface_r50"] = "arcface_mobilefacenet"
    embed_batch: int = Field(2, ge=1, le=16, description="aligned faces per embedder request")
    group_id: str = Field("lfr", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="VDevice scheduler group")
    timeout_ms: int = Field(1000, ge=50, le=60000, description="longest wait for one NPU request")


def probe() -> str | None:
    """None when hailo_platform imports and a Hailo device node exists, else why not."""
    try:
        import hailo_platform  # noqa: F401, PLC0415
    except ImportError:
        return "hailo_platform (HailoRT) is not installed; it ships with the Hailo driver on the device (apt install hailo-all)"
    if not DEVICE_NODE.exists():
        return f"no Hailo device at {DEVICE_NODE} (is the PCIe card seated and hailo_pci loaded?)"
    return None


def _sdk():
    try:
        import hailo_platform  # noqa: PLC0415 - device-only SDK, imported here only
    except ImportError:
        raise BackendUnavailable(f"inference backend 'hailo' is unavailable: {probe()}",
                                 fix="choose [inference] backend = \"litert\" or \"auto\"") from None
    return hailo_platform


def _short(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(version).strip().split(".")[:3] if p.isdigit())


@dataclass(frozen=True)
class DeviceInfo:
    """What the unit's card reports, recorded in the status and the commissioning report."""

    architecture: str  # HAILO8L, HAILO8
    firmware: str
    library: str
    driver: str


def check_driver(library: str, driver: str) -> None:
    """Refuse a hailo_pci driver that differs from the library (HailoRT requires an exact match)."""
    if _short(driver) != _short(library):
        raise BackendUnavailable(
            f"HailoRT library {library} and the hailo_pci driver {driver} differ "
            "(HailoRT would fail with HAILO_INVALID_DRIVER_VERSION)", fix=REINSTALL)


def check_firmware(library: str, firmware: str) -> None:
    """Refuse card firmware of another major.minor than the library ("Unsupported firmware operation")."""
    if _short(firmware)[:2] != _short(library)[:2]:
        raise BackendUnavailable(
            f"the Hailo card's firmware {firmware} does not match HailoRT {library} "
            "(HailoRT: \"Unsupported firmware operation\")", fix=REINSTALL + " (the driver loads the firmware at boot)")


def read_driver_version() -> str:
    """The loaded hailo_pci module's version, or BackendUnavailable when the module is not loaded."""
    try:
        return DRIVER_VERSION_FILE.read_text().strip()
    except OSError:
        raise BackendUnavailable(f"the hailo_pci kernel module is not loaded ({DRIVER_VERSION_FILE} is missing)",
                                 fix="`sudo modprobe hailo_pci`; if it fails, " + REINSTALL) from None


def identify(sdk) -> tuple[str, str]:
    """(architecture, firmware version) of the first Hailo device, as `hailortcli fw-control identify`."""
    ids = sdk.Device.scan()
    if not ids:
        raise BackendUnavailable("HailoRT sees no Hailo device", fix="check `lspci | grep Hailo` and `dmesg | grep hailo`")
    try:
        with sdk.Device(ids[0]) as device:
            board = device.control.identify()
    except sdk.HailoRTException as exc:
        raise _device_error(exc) from None
    fw = board.firmware_version
    return str(board.device_architecture), f"{fw.major}.{fw.minor}.{fw.revision}"


def device_info(sdk) -> DeviceInfo:
    """Read and check the library, driver and firmware versions and the card's architecture."""
    library, driver = str(sdk.__version__), read_driver_version()
    check_driver(library, driver)  # first: opening the device to identify it needs a matching driver
    arch, firmware = identify(sdk)
    check_firmware(library, firmware)
    return DeviceInfo(arch, firmware, library, driver)


def preflight(settings: Settings | None = None) -> str | None:
    """Why this card cannot run the configured networks (versions, chip, HEF pins), without loading
    them; None when it can. Board profiles use it to decide a fallback before the engine is built."""
    settings = settings or Settings()
    try:
        info = device_info(_sdk())
        for network in (settings.detector, settings.embedder):
            spec = hef_spec(network, settings.chip)
            if info.architecture not in RUNS_ON.get(spec.chip, ()):
                return f"{spec.file} is compiled for {spec.chip.upper()}, this card is {info.architecture}"
            model_path(spec.name, resolve(settings.models_dir))
    except (BackendUnavailable, ModelError) as exc:
        return f"{exc.message} (fix: {exc.fix})"
    return None


def _device_error(exc: Exception) -> BackendUnavailable:
    if "HAILO_INVALID_DRIVER_VERSION" in str(exc):
        return BackendUnavailable(f"HailoRT refused the driver: {exc}", fix=REINSTALL)
    return BackendUnavailable(f"cannot open the Hailo device: {exc}",
                              fix="check `hailortcli fw-control identify` and `dmesg | grep hailo`; reboot if the card hung")


def _hef_refused(exc: Exception, spec: ModelSpec, arch: str) -> ModelError:
    text = f"{type(exc).__name__}: {exc}"
    if "InvalidHEF" in text or "HEF_NOT_COMPATIBLE" in text or "INVALID_HEF" in text:
        return ModelError(f"HailoRT refused {spec.file} on this {arch} device ({text})",
                          fix=f"provision the HEFs compiled for {arch.lower()} (`appliance models fetch-hef "
                              f"--chip {arch.lower()}`) and set [inference] chip = \"{arch.lower()}\"")
    return ModelError(f"HailoRT cannot load {spec.file}: {text}", fix="run `appliance models verify` and check hailort.log")


def hef_spec(network: str, chip: str) -> ModelSpec:
    """The manifest entry of ``network`` compiled for ``chip`` (e.g. scrfd_2.5g-hailo8l)."""
    name, specs = f"{network}-{chip}", load_manifest()
    if name not in specs or not specs[name].npu:
        raise ModelError(f"no Hailo HEF '{name}' in models/manifest.toml",
                         fix=f"the Hailo backend runs {', '.join(n for n, s in specs.items() if s.npu)}; "
                             "for the CPU models choose [inference] backend = \"litert\"")
    return specs[name]


class HailoModel:
    """One HEF configured on the shared device; ``run`` takes RGB uint8 pixels (normalisation is in the HEF)."""

    backend = KEY
    pixels = True

    def __init__(self, device: "HailoDevice", spec: ModelSpec, infer_model, batch: int) -> None:
        self.name, self.model_id, self.spec = spec.name, spec.model_id, spec
        self._device, self._infer_model, self._lock = device, infer_model, threading.Lock()
        self.input_shape = (batch, *(int(v) for v in infer_model.input().shape))
        self.output_names = list(infer_model.output_names)
        self._shapes = {n: tuple(int(v) for v in infer_model.output(n).shape) for n in self.output_names}
        self._configured = infer_model.configure().__enter__()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch of frames; returns each output with a leading batch axis, in output_names order."""
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.shape[1:] != self.input_shape[1:] or not 1 <= len(x) <= self.input_shape[0]:
            raise InputError(f"{self.name} takes up to {self.input_shape[0]} uint8 frames of "
                             f"{self.input_shape[1:]}, got {x.dtype} {x.shape}", fix="this is a bug: report it")
        with self._lock:
            if self._configured is None:
                raise ModelError(f"{self.name} is closed", fix="this is a bug: report it")
            bindings = [self._bind(frame) for frame in x]
            self._submit(bindings)
        return [np.stack([b.output(n).get_buffer() for b in bindings]) for n in self.output_names]

    def _bind(self, frame: np.ndarray):
        outputs = {n: np.empty(self._shapes[n], np.float32) for n in self.output_names}
        bindings = self._configured.create_bindings(output_buffers=outputs)
        bindings.input().set_buffer(np.ascontiguousarray(frame))
        return bindings

    def _submit(self, bindings: list) -> None:
        sdk, done = _sdk(), []
        timeout = self._device.settings.timeout_ms
        try:
            self._configured.wait_for_async_ready(timeout_ms=timeout, frames_count=len(bindings))
            job = self._configured.run_async(bindings, lambda completion_info: done.append(completion_info))
            job.wait(timeout)
        except sdk.HailoRTException as exc:
            raise BackendUnavailable(f"the Hailo NPU did not run {self.name}: {type(exc).__name__}: {exc}",
                                     fix="check `dmesg | grep hailo` and the card's temperature; the unit will restart") from None
        if not done or done[0].exception is not None:
            raise BackendUnavailable(f"the Hailo NPU failed a {self.name} request: {done[0].exception if done else 'no completion'}",
                                     fix="check `dmesg | grep hailo`; the unit will restart")

    def close(self) -> None:
        """Release this network and, with the last one, the device. Idempotent."""
        with self._lock:
            configured, self._configured = self._configured, None
        if configured is not None:
            configured.__exit__(None, None, None)
            self._infer_model = None
            self._device.forget(self)


class HailoDevice:
    """The card as one VDevice (ROUND_ROBIN, one group id) shared by every network opened on it."""

    def __init__(self, settings: Settings, models_dir: Path | None = None) -> None:
        self.settings = settings
        self.models_dir = Path(models_dir) if models_dir is not None else resolve(settings.models_dir)
        self.info: DeviceInfo | None = None
        self._vdevice = None
        self._models: list[HailoModel] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "HailoDevice":
        sdk = _sdk()
        self.info = device_info(sdk)
        params = sdk.VDevice.create_params()
        params.scheduling_algorithm = sdk.HailoSchedulingAlgorithm.ROUND_ROBIN
        params.group_id = self.settings.group_id
        try:
            self._vdevice = sdk.VDevice(params).__enter__()
        except sdk.HailoRTException as exc:
            raise _device_error(exc) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, network: str, batch: int = 1) -> HailoModel:
        """Configure the pinned, hash-checked HEF of ``network`` (e.g. "scrfd_2.5g") for this chip."""
        spec = hef_spec(network, self.settings.chip)
        self._check_chip(spec)
        path = model_path(spec.name, self.models_dir)
        sdk = _sdk()
        try:
            infer_model = self._vdevice.create_infer_model(str(path))
            infer_model.set_batch_size(batch)
            infer_model.input().set_format_type(sdk.FormatType.UINT8)
            for output in infer_model.outputs:
                output.set_format_type(sdk.FormatType.FLOAT32)
            model = HailoModel(self, spec, infer_model, batch)
        except sdk.HailoRTException as exc:
            raise _hef_refused(exc, spec, self.info.architecture) from None
        with self._lock:
            self._models.append(model)
        return model

    def _check_chip(self, spec: ModelSpec) -> None:
        arch = self.info.architecture
        if arch not in RUNS_ON.get(spec.chip, ()):
            raise ModelError(f"{spec.file} is compiled for {spec.chip.upper()}, this card is {arch}",
                             fix=f"set [inference] chip = \"{arch.lower()}\" (board profile rpi5-{arch.lower()}) "
                                 f"and provision its HEFs with `appliance models fetch-hef --chip {arch.lower()}`")

    def forget(self, model: HailoModel) -> None:
        """Called by a closing model; the device itself stays open until :meth:`close`."""
        with self._lock:
            if model in self._models:
                self._models.remove(model)

    def close(self) -> None:
        """Close every network still open, then release the VDevice. Idempotent."""
        with self._lock:
            models = list(self._models)
        for model in models:
            model.close()
        vdevice, self._vdevice = self._vdevice, None
        if vdevice is not None:
            vdevice.__exit__(None, None, None)


class _Shared:
    """The process's one HailoDevice, opened with the first network and released with the last."""

    lock = threading.Lock()
    device: HailoDevice | None = None
    users = 0


class SharedHailoModel:
    """A network on the process-wide device; ``close`` releases the device with the last network."""

    def __init__(self, model: HailoModel) -> None:
        self._model = model
        self.name, self.model_id, self.backend, self.pixels = model.name, model.model_id, KEY, True
        self.file_sha256 = model.spec.sha256
        self.input_shape, self.output_names = model.input_shape, model.output_names

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """See :meth:`HailoModel.run`."""
        return self._model.run(x)

    def close(self) -> None:
        """Close this network; the last one closed releases the VDevice. Idempotent."""
        with _Shared.lock:
            if self._model is None:
                return
            self._model.close()
            self._model = None
            _Shared.users -= 1
            if _Shared.users == 0 and _Shared.device is not None:
                _Shared.device.close()
                _Shared.device = None


def open_model(name: str, settings: Settings | None = None, models_dir: Path | None = None) -> SharedHailoModel:
    """Open network ``name`` ("scrfd_2.5g", "arcface_mobilefacenet", ...) on the shared device
    (``models_dir`` overrides ``settings.models_dir``, for tests and tooling)."""
    settings = settings or Settings()
    batch = settings.embed_batch if hef_spec(name, settings.chip).role == "embedder" else 1
    with _Shared.lock:
        if _Shared.device is None:
            _Shared.device = HailoDevice(settings, models_dir).__enter__()
        try:
            model = _Shared.device.open(name, batch)
        except (ModelError, BackendUnavailable):
            if _Shared.users == 0:
                _Shared.device.close()
                _Shared.device = None
            raise
        _Shared.users += 1
    return SharedHailoModel(model)
