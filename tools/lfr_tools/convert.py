"""Build derived model files (TFLite -> ONNX) and check them against the source.

Used by ``make models`` only; the running appliance never converts anything.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.errors import ModelError
from appliance.modelstore import ModelSpec, sha256_file

TOLERANCE = 1e-3  # max abs difference between LiteRT and ONNX Runtime outputs


def _convert(src: Path, dest: Path) -> None:
    import tflite2onnx  # noqa: PLC0415 - build-time tool

    logging.disable(logging.WARNING)  # tflite2onnx warns once per fp16 tensor
    try:
        tflite2onnx.convert(str(src), str(dest))
    finally:
        logging.disable(logging.NOTSET)


def _max_difference(src: Path, dest: Path) -> float:
    from appliance.inference import litert, onnx  # noqa: PLC0415

    ref = litert.open_model_file(src, threads=1)
    conv = onnx.open_model_file(dest, threads=1)
    x = np.random.default_rng(0).uniform(-1, 1, ref.input_shape).astype(np.float32)
    # tflite2onnx may list a graph's outputs in another order (the face mesh's two heads):
    # pair them by size, which differs between the outputs of every model pinned here
    by_size = lambda outputs: sorted(outputs, key=lambda a: a.size)  # noqa: E731
    return max(float(np.abs(a.reshape(-1) - b.reshape(-1)).max())
               for a, b in zip(by_size(ref.run(x)), by_size(conv.run(x))))


def build_derived(spec: ModelSpec, source: ModelSpec, models_dir: Path) -> Path:
    """Convert ``source`` into ``spec.file``, check it numerically, record its hash."""
    src = models_dir / source.file
    dest = models_dir / spec.file
    record = models_dir / (spec.file + ".sha256")
    if dest.exists() and record.exists() and record.read_text().split()[0] == sha256_file(dest):
        return dest
    tmp = dest.with_suffix(".part.onnx")
    _convert(src, tmp)
    diff = _max_difference(src, tmp)
    if diff > TOLERANCE:
        tmp.unlink()
        raise ModelError(f"{spec.name}: ONNX conversion differs from LiteRT by {diff:.2e}",
                         fix=f"check that {spec.converter} is the installed converter version")
    tmp.replace(dest)
    record.write_text(f"{sha256_file(dest)}  {spec.file}  from {source.sha256} by {spec.converter}"
                      f" max_abs_diff={diff:.2e}\n")
    return dest
