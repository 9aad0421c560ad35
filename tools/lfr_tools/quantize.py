"""The int8 embedder: MobileFaceNet ONNX quantised with onnxruntime's quantize_static.

Calibrated on faces aligned by the unit's own detector and aligner from the
calibration split of the evaluation set (never the test split), Conv layers only,
per-channel weights and 99.99th-percentile activation ranges (the setting that
kept the most accuracy, MODELS.md). QOperator format (QLinearConv): the converted
graph's opset is below 13, where QDQ's per-channel DequantizeLinear has no axis. The built file is never committed: it is
rebuilt by `appliance quantize` into models/cache/ with its SHA-256 recorded
beside it and checked at every load, like the other derived models.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from appliance.errors import ModelError
from appliance.modelstore import DEFAULT_MODELS_DIR, model_path, sha256_file

INT8_FILE = "MobileFaceNet.int8.onnx"
INT8_NAME = "mobilefacenet-int8"
QUANT_SETTINGS = {"op_types": ["Conv"], "per_channel": True, "calibrate_method": "Percentile",
                  "percentile": 99.99, "weight_type": "QInt8", "activation_type": "QUInt8",
                  "format": "QOperator"}
log = logging.getLogger(__name__)


def calibration_faces(engine, paths: list[Path], limit: int) -> np.ndarray:
    """Aligned 112x112 BGR faces (most central face of each image) for calibration."""
    from lfr_tools.evaluate.embedding import central_detection, read_image  # noqa: PLC0415
    from appliance.vision.align import align  # noqa: PLC0415

    faces = []
    for path in paths:
        image = read_image(path)
        dets = engine.detector.detect(image)
        if dets:
            faces.append(align(image, central_detection(dets, image).keypoints))
        if len(faces) >= limit:
            break
    if len(faces) < 8:
        raise ModelError(f"only {len(faces)} calibration faces found", fix="point --dataset at lfw-dev")
    return np.stack(faces)


class _FaceReader:
    """onnxruntime CalibrationDataReader over aligned faces, in the graph's batch of two."""

    def __init__(self, faces: np.ndarray, input_name: str, batch: int) -> None:
        from appliance.vision.embed import preprocess  # noqa: PLC0415

        x = preprocess(faces).transpose(0, 3, 1, 2)
        n = len(x) - len(x) % batch
        self._batches = iter([{input_name: np.ascontiguousarray(x[i:i + batch])} for i in range(0, n, batch)])

    def get_next(self) -> dict | None:
        """The next calibration batch, or None when done."""
        return next(self._batches, None)


def quantize(faces: np.ndarray, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """Build models_dir/MobileFaceNet.int8.onnx from the fp32 ONNX and record its hash."""
    import onnx  # noqa: PLC0415 - build-time tooling
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # noqa: PLC0415

    src = model_path("mobilefacenet-onnx", models_dir)
    graph_input = onnx.load(str(src)).graph.input[0]
    batch = graph_input.type.tensor_type.shape.dim[0].dim_value or 1
    dest = Path(models_dir) / INT8_FILE
    tmp = dest.with_suffix(".part.onnx")
    quantize_static(str(src), str(tmp), _FaceReader(faces, graph_input.name, batch),
                    quant_format=QuantFormat.QOperator, op_types_to_quantize=QUANT_SETTINGS["op_types"],
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": QUANT_SETTINGS["percentile"]})
    tmp.replace(dest)
    record = dest.with_name(INT8_FILE + ".sha256")
    record.write_text(f"{sha256_file(dest)}  {INT8_FILE}  from {sha256_file(src)} by onnxruntime "
                      f"quantize_static {QUANT_SETTINGS} calibration_faces={len(faces)}\n")
    return dest


def int8_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """The verified int8 model file; ModelError if it was not built or has been altered."""
    path = Path(models_dir) / INT8_FILE
    record = path.with_name(INT8_FILE + ".sha256")
    if not path.exists() or not record.exists():
        raise ModelError(f"{path} is not built", fix="run `appliance quantize` (needs lfw-dev)")
    if sha256_file(path) != record.read_text().split()[0]:
        raise ModelError(f"{path} does not match its recorded SHA-256", fix="run `appliance quantize` again")
    return path


def int8_engine(cfg):
    """The configured FaceEngine with its embedder swapped for the int8 ONNX model."""
    from appliance import inference  # noqa: PLC0415
    from appliance.config import resolve  # noqa: PLC0415
    from appliance.inference import onnx as onnx_backend  # noqa: PLC0415
    from appliance.vision.embed import Embedder  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    base = FaceEngine.from_config(cfg)
    path = int8_path(resolve(cfg.inference.models_dir))
    model = onnx_backend.open_model_file(path, inference.settings_for(onnx_backend.KEY, cfg.inference).threads)
    return FaceEngine(base.detector, Embedder(model, f"{INT8_NAME}@{sha256_file(path)[:12]}"), base.gate)


def build_from_dataset(engine, dataset: Path, limit: int = 512, models_dir: Path = DEFAULT_MODELS_DIR) -> dict:
    """Quantise with faces from the calibration split of ``dataset``; return what was built."""
    from lfr_tools.evaluate import protocol  # noqa: PLC0415

    splits = protocol.build_splits(protocol.list_identities(dataset))
    paths = splits["calibration"].all_paths()
    order = np.random.default_rng(0).permutation(len(paths))  # spread over identities, repeatably
    faces = calibration_faces(engine, [paths[i] for i in order], limit)
    dest = quantize(faces, models_dir)
    return {"file": str(dest), "sha256": sha256_file(dest), "calibration_faces": int(len(faces)),
            "calibration_split": "calibration", "settings": QUANT_SETTINGS}
