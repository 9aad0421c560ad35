"""LiteRT (ai-edge-litert, the renamed TensorFlow Lite runtime); tflite_runtime as fallback."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import BackendUnavailable, ModelError
from ..modelstore import model_path, sha256_file
from ..paths import resolve
from .base import BackendSettings

KEY = "litert"
AUTO_PRIORITY = 1  # after an NPU, before ONNX Runtime


class Settings(BackendSettings):
    """[inference] backend = "litert": TFLite graphs on the CPU (XNNPACK)."""

    backend: Literal[KEY] = KEY
    threads: int = Field(1, ge=1, le=16, description="per model; the two inference stages already overlap")


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # noqa: PLC0415
    return Interpreter


def probe() -> str | None:
    """None when LiteRT (or tflite_runtime) imports, else why not."""
    try:
        _interpreter_class()
    except ImportError as exc:
        return f"neither ai_edge_litert nor tflite_runtime imports ({exc})"
    return None


class LiteRTModel:
    """A TFLite graph in a LiteRT interpreter; one call at a time (the interpreter is not reentrant)."""

    backend = KEY
    pixels = False  # float input, normalised by the caller (embed.preprocess)

    def __init__(self, path: Path, threads: int) -> None:
        try:
            self._it = _interpreter_class()(model_path=str(path), num_threads=threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load {path}: {exc}",
                             fix="run `make models` to fetch intact weights") from None
        self._input = self._it.get_input_details()[0]
        self._outputs = [d["index"] for d in self._it.get_output_details()]
        self.input_shape = tuple(int(v) for v in self._input["shape"])
        self.name, self.file_sha256 = Path(path).stem, sha256_file(path)
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch; returns copies of the output tensors."""
        with self._lock:
            try:
                self._it.set_tensor(self._input["index"], np.ascontiguousarray(x, dtype=np.float32))
                self._it.invoke()
                return [self._it.get_tensor(i).copy() for i in self._outputs]
            except (RuntimeError, ValueError) as exc:  # the runtime failed: the unit may fall back
                raise BackendUnavailable(f"LiteRT failed running {self.name}: {exc}",
                                         fix="check the model files (`appliance models verify`); "
                                             "the unit falls back per [board] inference_fallback") from None

    def close(self) -> None:
        """Drop the interpreter (its tensors and delegate go with it)."""
        with self._lock:
            self._it = None


def open_model_file(path: Path, threads: int = 1) -> LiteRTModel:
    """Load a .tflite file without manifest checks (build tooling and tests)."""
    return LiteRTModel(Path(path), threads)


def open_model(name: str, settings: Settings) -> LiteRTModel:
    """Load the pinned, hash-checked TFLite model ``name``."""
    return LiteRTModel(model_path(name, resolve(settings.models_dir)), settings.threads)
