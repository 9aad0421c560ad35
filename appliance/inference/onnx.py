"""ONNX Runtime on the CPU, running the tflite2onnx conversions of the pinned models."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import BackendUnavailable, ModelError
from ..modelstore import model_path, sha256_file
from ..paths import resolve
from .base import BackendSettings

KEY = "onnx"
AUTO_PRIORITY = 2  # the last CPU fallback


class Settings(BackendSettings):
    """[inference] backend = "onnx": the tflite2onnx conversions on ONNX Runtime's CPU provider."""

    backend: Literal[KEY] = KEY
    threads: int = Field(1, ge=1, le=16, description="intra-op threads per model")


def probe() -> str | None:
    """None when onnxruntime imports with a CPU provider, else why not."""
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError as exc:
        return f"onnxruntime does not import ({exc})"
    if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
        return "onnxruntime has no CPUExecutionProvider"
    return None


class OnnxModel:
    """An ONNX graph whose input is NCHW; callers pass NHWC like every backend."""

    backend = KEY
    pixels = False  # float input, normalised by the caller (embed.preprocess)

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(f"ONNX Runtime cannot load {path}: {exc}",
                             fix="run `make models` to rebuild the ONNX files") from None
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        n, c, h, w = inp.shape
        self.input_shape = (int(n), int(h), int(w), int(c))
        self.name, self.file_sha256 = Path(path).stem, sha256_file(path)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one NHWC batch (transposed to NCHW for the graph)."""
        nchw = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2))
        try:
            return self._session.run(None, {self._input_name: nchw})
        except RuntimeError as exc:  # onnxruntime's failures: the unit may fall back
            raise BackendUnavailable(f"ONNX Runtime failed running {self.name}: {exc}",
                                     fix="check the model files (`appliance models verify`); "
                                         "the unit falls back per [board] inference_fallback") from None

    def close(self) -> None:
        """Drop the inference session."""
        self._session = None


def open_model_file(path: Path, threads: int = 1) -> OnnxModel:
    """Load an .onnx file without manifest checks (build tooling and tests)."""
    return OnnxModel(Path(path), threads)


def open_model(name: str, settings: Settings) -> OnnxModel:
    """Load the hash-checked ONNX conversion of model ``name``."""
    return OnnxModel(model_path(f"{name}-onnx", resolve(settings.models_dir)), settings.threads)
