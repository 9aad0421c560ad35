"""The int8 embedder build: calibrated on aligned faces, hash recorded and checked, close to fp32."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from appliance.errors import ModelError
from appliance.modelstore import DEFAULT_MODELS_DIR

from eval_helpers import eval_engine, lfw_dev_or_skip

pytestmark = [pytest.mark.dataset, pytest.mark.slow]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from lfr_tools import quantize
    from lfr_tools.evaluate import protocol

    lfw = lfw_dev_or_skip()
    engine = eval_engine()
    models = tmp_path_factory.mktemp("models")
    for name in ("MobileFaceNet.onnx", "MobileFaceNet.onnx.sha256"):
        shutil.copy(DEFAULT_MODELS_DIR / name, models / name)
    calib = protocol.build_splits(protocol.list_identities(lfw))["calibration"].all_paths()
    faces = quantize.calibration_faces(engine, calib[:40], limit=24)
    path = quantize.quantize(faces, models)
    test = protocol.build_splits(protocol.list_identities(lfw))["test"].all_paths()
    return engine, models, path, faces, quantize.calibration_faces(engine, test[:40], limit=16)


def test_int8_build_records_and_checks_its_hash(built):
    from lfr_tools import quantize

    _, models, path, _, _ = built
    assert quantize.int8_path(models) == path
    record = (models / (quantize.INT8_FILE + ".sha256")).read_text()
    assert "quantize_static" in record and "calibration_faces=24" in record
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ModelError, match="recorded SHA-256"):
        quantize.int8_path(models)


def test_int8_embeddings_stay_close_to_fp32(built):
    from lfr_tools import quantize
    from appliance.inference import onnx as onnx_backend
    from appliance.vision.embed import Embedder

    engine, models, _, calib_faces, faces = built
    quantize.quantize(calib_faces, models)  # rebuild (the previous test altered the file)
    int8 = Embedder(onnx_backend.open_model_file(quantize.int8_path(models)), "int8")
    a, b = engine.embedder.embed(faces), int8.embed(faces)
    cosine = np.sum(a * b, axis=1)
    assert cosine.mean() > 0.9 and cosine.min() > 0.75
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
