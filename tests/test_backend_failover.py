"""An inference backend that fails mid-run: the board's fallback takes over (audited), or, when
the deployment's watchlist has no entries for the fallback's model, matching stops and says why.

Through the real registries: LiteRT fails after a few inferences (as a Hailo card that stops
answering would), the board profile names ONNX Runtime as the fallback.
"""
from __future__ import annotations

import json

import pytest

from appliance.audit.log import connect, iter_entries
from appliance.config import load_config
from appliance.errors import BackendUnavailable
from appliance.inference import litert, onnx
from appliance.unit import Unit
from conftest import provision
from deployment_helpers import start_deployment, trusting
from lfr_tools.scenes import Actor, background, write_clip
from scene_helpers import lfw_people, sprite_from


@pytest.fixture
def deployed(engine, lfw, tmp_path):
    """A unit config (LiteRT, ONNX Runtime as the board's fallback) with a signed deployment of one
    person, and a clip where that person walks past."""
    wanted = lfw_people(lfw, min_images=2)[0]
    sprite = sprite_from(engine, sorted(wanted.glob("*.jpg"))[1], wanted.name)
    write_clip(tmp_path / "clip", background((960, 540), seed=3),
               [Actor(sprite, 0, 29, (150.0, 200.0), (700.0, 220.0), 100)], 30)
    data = provision(tmp_path / "data")
    config = tmp_path / "unit.toml"
    config.write_text(trusting(f'[unit]\ndata_dir = "{data}"\n[capture]\nsource = "{tmp_path / "clip"}"\n'
                               f'[inference]\nbackend = "{litert.KEY}"\n'
                               f'[board]\ninference_fallback = "{onnx.KEY}"\n', tmp_path / "back-office"))
    start_deployment(config, {"WANTED-1": sorted(wanted.glob("*.jpg"))[0]}, engine)
    return config


def _failing_after(monkeypatch, calls: int) -> None:
    real, count = litert.LiteRTModel.run, {"n": 0}

    def run(self, x):
        count["n"] += 1
        if count["n"] > calls:
            raise BackendUnavailable("LiteRT failed running it: injected", fix="none")
        return real(self, x)

    monkeypatch.setattr(litert.LiteRTModel, "run", run)


def _faults(data):
    db = connect(data / "audit.db", readonly=True)
    return [e["payload"] for e in (json.loads(b) for _, b, _ in iter_entries(db)) if e["type"] == "fault"]


def test_the_fallback_backend_takes_over_and_keeps_matching(deployed, monkeypatch, tmp_path):
    _failing_after(monkeypatch, calls=6)  # fails within the first frames, before any alert
    with Unit.open(load_config(deployed)) as unit:
        result = unit.run(install_signals=False)
        backend = unit.engine.backend
    assert result.error is None, result.error
    assert backend == onnx.KEY
    assert [a.subject_ref for a in result.alerts] == ["WANTED-1"], "it still recognises the listed person"
    fallbacks = [f for f in _faults(tmp_path / "data") if f["kind"] == "backend_fallback"]
    assert len(fallbacks) == 1 and f"now {onnx.KEY}" in fallbacks[0]["detail"]


def test_without_entries_for_the_fallback_model_matching_stops_and_says_why(deployed, monkeypatch, tmp_path):
    from appliance import failover
    from appliance.vision.engine import FaceEngine

    real = FaceEngine.from_config

    def other_model(cfg):  # a fallback whose embeddings are not comparable with the bundle's
        engine = real(cfg)
        engine.embedder.model_id = "other-embedder@000000000000"
        return engine

    monkeypatch.setattr(failover.FaceEngine, "from_config", staticmethod(other_model))
    _failing_after(monkeypatch, calls=6)
    with Unit.open(load_config(deployed)) as unit:
        result = unit.run(install_signals=False)
        status = unit.status()
    assert isinstance(result.error, BackendUnavailable) and result.error.exit_code != 0
    assert status["state"] == "faulted" and not result.alerts
    detail = [f["detail"] for f in _faults(tmp_path / "data") if f["kind"] == "backend_fallback"]
    assert len(detail) == 1 and "no entries" in detail[0] and "matching stopped" in detail[0]
