"""Both CPU backends run the pinned models and agree; model files are hash-checked."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance import inference
from appliance.config import Config
from appliance.errors import BackendUnavailable, ModelError
from appliance.modelstore import DEFAULT_MODELS_DIR, load_manifest, model_path
from appliance.vision.engine import FaceEngine


def test_registry_lists_every_backend_with_a_reason_when_unavailable():
    table = inference.availability()
    assert set(table) == {"litert", "onnx", "hailo"}
    assert table["litert"] is None and table["onnx"] is None
    assert "hailo_platform" in table["hailo"]
    with pytest.raises(BackendUnavailable, match="hailo"):
        inference.choose(inference.backend_module("hailo").Settings())
    with pytest.raises(BackendUnavailable, match="unknown"):
        inference.backend_module("tpu")


def test_litert_and_onnx_give_the_same_faces_and_embeddings(lfw):
    photo = cv2.imread(str(sorted(next(p for p in sorted(lfw.iterdir()) if p.is_dir()).glob("*.jpg"))[0]))
    results = {}
    for key in ("litert", "onnx"):
        engine = FaceEngine.from_config(Config.model_validate({"inference": {"backend": key}}))
        faces = engine.faces(photo)
        assert len(faces) == 1
        results[key] = (faces[0].det.box, faces[0].embedding, engine.model_id)
    (box_a, emb_a, id_a), (box_b, emb_b, id_b) = results["litert"], results["onnx"]
    assert np.abs(box_a - box_b).max() < 1.0
    assert float(emb_a @ emb_b) > 0.999
    assert id_a == id_b == load_manifest()["mobilefacenet"].model_id


def test_every_manifest_entry_verifies():
    for name, spec in load_manifest().items():
        if not spec.npu:  # Hailo HEFs are provisioned on Hailo units only (tests/test_hailo_backend.py)
            assert model_path(name, DEFAULT_MODELS_DIR).exists()


def test_unknown_model_name_is_refused():
    with pytest.raises(ModelError, match="unknown model"):
        model_path("resnet-9000")
