"""A test double of exactly the ``hailo_platform`` surface appliance/inference/hailo.py uses.

Only the calls listed in docs/hardware.md exist here, with the checks and failures of the
real HailoRT 4.x Python API (hailo-ai/hailort, pyhailort.py): the VDevice needs the
ROUND_ROBIN scheduler params; an InferModel's batch size and format types are set before
``configure``; a HEF for another chip fails at ``configure`` with HailoRTInvalidHEFException;
a driver that differs from the library fails VDevice creation with status 76; bindings take
C-contiguous buffers of the stream's shape and dtype; ``run_async`` calls the callback with
``completion_info=`` and ``job.wait`` returns only after it. Every call is recorded in
``STATE.calls``; a call out of order, or a request/binding/configured model left behind when
the VDevice is released, is a :class:`ContractViolation` (and is kept in ``STATE.violations``).

A fake HEF is a JSON file: {"arch": "HAILO8L", "input": [h, w, c], "outputs": {name: shape}}.
``STATE.responder(hef_name, frame) -> {output name: array}`` plays the network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__version__ = "4.21.0"


class ContractViolation(AssertionError):
    """The backend used the SDK in a way the real one would reject or leak."""


class HailoRTException(Exception):
    """Base of HailoRT errors (exported by hailo_platform)."""


class HailoRTInvalidHEFException(HailoRTException):
    """HAILO_INVALID_HEF(26), e.g. a HEF compiled for another chip."""


class HailoRTTimeout(HailoRTException):
    """HAILO_TIMEOUT."""


class HailoSchedulingAlgorithm:
    """The scheduler choices (a pybind enum in the real SDK)."""

    NONE = "NONE"
    ROUND_ROBIN = "ROUND_ROBIN"


class FormatType:
    """Buffer formats (a pybind enum in the real SDK)."""

    AUTO = "AUTO"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    FLOAT32 = "FLOAT32"


DTYPES = {FormatType.UINT8: np.uint8, FormatType.FLOAT32: np.float32}


@dataclass
class State:
    """What the fake device is and everything done to it."""

    arch: str = "HAILO8L"
    firmware: tuple[int, int, int] = (4, 21, 0)
    driver: str = __version__  # what libhailort's own driver check compares with __version__
    device_ids: list[str] = field(default_factory=lambda: ["0000:01:00.0"])
    fail_run: bool = False
    calls: list[tuple] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    vdevices: list["VDevice"] = field(default_factory=list)
    responder: object = None

    def violate(self, message: str) -> None:
        self.violations.append(message)
        raise ContractViolation(message)

    def open_handles(self) -> list[str]:
        """Everything still held: VDevices, configured models, bindings not run, jobs not waited."""
        held = []
        for vd in self.vdevices:
            held += [f"VDevice {vd.params.group_id}"] * (not vd.released)
            for cim in vd.configured:
                held += [f"configured {cim.hef_name}"] * (not cim.exited)
                held += [f"bindings of {cim.hef_name} never run"] * sum(not b.submitted for b in cim.bindings)
                held += [f"job of {cim.hef_name} never waited"] * sum(not j.waited for j in cim.jobs)
        return held


STATE = State()


def reset(**kwargs) -> State:
    """A fresh device for one test."""
    global STATE
    STATE = State(**kwargs)
    return STATE


class _Params(SimpleNamespace):
    pass


class VDevice:
    """Hailo virtual device: a context manager; release() is idempotent."""

    @staticmethod
    def create_params():
        STATE.calls.append(("VDevice.create_params",))
        return _Params(scheduling_algorithm=HailoSchedulingAlgorithm.NONE, group_id="", multi_process_service=False)

    def __init__(self, params=None, *, device_ids=None) -> None:
        STATE.calls.append(("VDevice", getattr(params, "scheduling_algorithm", None), getattr(params, "group_id", None)))
        if STATE.driver != __version__:
            raise HailoRTException("libhailort failed with error: 76 (HAILO_INVALID_DRIVER_VERSION)")
        if not STATE.device_ids:
            raise HailoRTException("libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)")
        self.params, self.released, self.configured = params, False, []
        STATE.vdevices.append(self)

    def __enter__(self) -> "VDevice":
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def release(self) -> None:
        if self.released:
            return
        STATE.calls.append(("VDevice.release",))
        self.released = True
        left = [h for h in STATE.open_handles() if not h.startswith("VDevice")]
        if left:
            STATE.violate(f"VDevice released while still held: {left}")

    def create_infer_model(self, hef_source, name: str = "") -> "InferModel":
        STATE.calls.append(("create_infer_model", Path(hef_source).name))
        if self.released:
            STATE.violate("create_infer_model on a released VDevice")
        if type(hef_source) is not str:
            raise ValueError("hef_source must be a path (str) or bytes")
        try:
            hef = json.loads(Path(hef_source).read_text())
        except (OSError, ValueError) as exc:
            raise HailoRTInvalidHEFException(f"Invalid HEF. See hailort.log for more information ({exc})") from None
        if self.params.scheduling_algorithm != HailoSchedulingAlgorithm.ROUND_ROBIN:
            STATE.violate("two models on one VDevice need the ROUND_ROBIN scheduler")
        return InferModel(self, Path(hef_source).name, hef)


class _Stream:
    def __init__(self, model: "InferModel", name: str, shape, fmt: str) -> None:
        self._model, self.name, self.shape, self._fmt = model, name, list(shape), fmt

    @property
    def format(self):
        return SimpleNamespace(type=self._fmt)

    def set_format_type(self, type) -> None:
        STATE.calls.append(("set_format_type", self.name, type))
        if self._model.configured is not None:
            STATE.violate(f"set_format_type({self.name}) after configure() has no effect")
        self._fmt = type


class InferModel:
    """An HEF on the VDevice, before configure()."""

    def __init__(self, vdevice: VDevice, hef_name: str, hef: dict) -> None:
        self._vdevice, self.hef_name, self.hef = vdevice, hef_name, hef
        self.configured, self.batch_size = None, None
        self._input = _Stream(self, f"{hef_name}/input_layer1", hef["input"], FormatType.UINT8)
        self._outputs = {n: _Stream(self, n, s, FormatType.UINT8) for n, s in hef["outputs"].items()}

    @property
    def input_names(self) -> list[str]:
        return [self._input.name]

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def outputs(self) -> list[_Stream]:
        return list(self._outputs.values())

    def input(self, name: str = "") -> _Stream:
        return self._input

    def output(self, name: str = "") -> _Stream:
        if not name and len(self._outputs) == 1:
            return self.outputs[0]
        if name not in self._outputs:
            raise HailoRTException(f"HAILO_NOT_FOUND: no output {name!r}")
        return self._outputs[name]

    def set_batch_size(self, batch_size: int) -> None:
        STATE.calls.append(("set_batch_size", self.hef_name, batch_size))
        if self.configured is not None:
            STATE.violate("set_batch_size after configure()")
        self.batch_size = batch_size

    def configure(self) -> "ConfiguredInferModel":
        STATE.calls.append(("configure", self.hef_name))
        if self.hef["arch"] == "HAILO8" and STATE.arch == "HAILO8L":
            raise HailoRTInvalidHEFException("Invalid HEF. See hailort.log for more information")
        self.configured = ConfiguredInferModel(self)
        self._vdevice.configured.append(self.configured)
        return self.configured


class _Binding:
    def __init__(self, stream: _Stream, dtype) -> None:
        self._stream, self._dtype, self.buffer = stream, dtype, None

    def set_buffer(self, buffer: np.ndarray) -> None:
        if not buffer.flags.c_contiguous:
            raise HailoRTException("Buffer must be C_CONTIGUOUS")
        if tuple(buffer.shape) != tuple(self._stream.shape) or buffer.dtype != self._dtype:
            STATE.violate(f"buffer {buffer.dtype}{buffer.shape} for {self._stream.name} "
                          f"which is {np.dtype(self._dtype)}{tuple(self._stream.shape)}")
        self.buffer = buffer

    def get_buffer(self, tf_format=False) -> np.ndarray:
        return self.buffer


class Bindings:
    """One request: an input buffer and the output buffers."""

    def __init__(self, cim: "ConfiguredInferModel") -> None:
        model = cim.model
        self._input = _Binding(model.input(), DTYPES[model.input()._fmt])
        self._outputs = {n: _Binding(s, DTYPES[s._fmt]) for n, s in model._outputs.items()}
        self.submitted = False

    def input(self, name: str = "") -> _Binding:
        return self._input

    def output(self, name: str = "") -> _Binding:
        return self._outputs[name] if name else next(iter(self._outputs.values()))


class AsyncInferJob:
    """A submitted request; wait() returns after its callback ran."""

    def __init__(self, run) -> None:
        self._run, self.waited = run, False

    def wait(self, timeout_ms: int) -> None:
        STATE.calls.append(("job.wait", timeout_ms))
        self.waited = True
        self._run()


class ConfiguredInferModel:
    """The configured network: bindings and asynchronous runs; a context manager."""

    def __init__(self, model: InferModel) -> None:
        self.model, self.hef_name = model, model.hef_name
        self.exited, self.ready, self.bindings, self.jobs = False, 0, [], []

    def __enter__(self) -> "ConfiguredInferModel":
        return self

    def __exit__(self, *exc) -> None:
        STATE.calls.append(("configured.exit", self.hef_name))
        pending = [b for b in self.bindings if not b.submitted] + [j for j in self.jobs if not j.waited]
        if pending:
            STATE.violate(f"{self.hef_name} closed with {len(pending)} request(s) in flight")
        self.exited = True

    def _live(self, op: str) -> None:
        STATE.calls.append((op, self.hef_name))
        if self.exited or self.model._vdevice.released:
            STATE.violate(f"{op} on a closed model {self.hef_name}")

    def create_bindings(self, input_buffers=None, output_buffers=None) -> Bindings:
        self._live("create_bindings")
        bindings = Bindings(self)
        for name, buf in (output_buffers or {}).items():
            bindings.output(name).set_buffer(buf)
        self.bindings.append(bindings)
        return bindings

    def wait_for_async_ready(self, timeout_ms: int = 1000, frames_count: int = 1) -> None:
        self._live("wait_for_async_ready")
        if frames_count > (self.model.batch_size or 1):
            raise HailoRTTimeout("Received a timeout - hailort has failed because a timeout had occurred")
        self.ready = frames_count

    def run_async(self, bindings: list, callback=None) -> AsyncInferJob:
        self._live("run_async")
        if self.ready < len(bindings):
            STATE.violate("run_async without wait_for_async_ready for these frames")
        self.ready = 0
        for b in bindings:
            if b.input().buffer is None or any(o.buffer is None for o in b._outputs.values()):
                STATE.violate("run_async with a binding whose buffers are not all set")
            b.submitted = True

        def complete() -> None:
            error = HailoRTException("HAILO_STREAM_ABORT") if STATE.fail_run else None
            for b in bindings:
                produced = (STATE.responder or _zeros)(self.hef_name, b.input().buffer)
                for name, out in b._outputs.items():
                    out.buffer[...] = produced.get(name, 0)
            if callback is not None:
                callback(completion_info=SimpleNamespace(exception=error))

        job = AsyncInferJob(complete)
        self.jobs.append(job)
        return job


def _zeros(hef_name: str, frame: np.ndarray) -> dict:
    return {}


class _Control:
    def __init__(self, device_id: str) -> None:
        self._id = device_id

    def identify(self):
        STATE.calls.append(("identify", self._id))
        major, minor, revision = STATE.firmware
        return SimpleNamespace(device_architecture=STATE.arch, board_name="Hailo-8",
                               firmware_version=SimpleNamespace(major=major, minor=minor, revision=revision))


class Device:
    """A physical device, used here only to identify it."""

    @classmethod
    def scan(cls) -> list[str]:
        STATE.calls.append(("Device.scan",))
        return list(STATE.device_ids)

    def __init__(self, device_id=None) -> None:
        STATE.calls.append(("Device", device_id))
        if STATE.driver != __version__:
            raise HailoRTException("libhailort failed with error: 76 (HAILO_INVALID_DRIVER_VERSION)")
        self._id, self.released = device_id, False

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *args) -> bool:
        self.release()
        return False

    def release(self) -> None:
        STATE.calls.append(("Device.release", self._id))
        self.released = True

    @property
    def control(self) -> _Control:
        return _Control(self._id)
