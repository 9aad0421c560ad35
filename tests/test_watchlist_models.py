"""Multi-model bundles: each entry carries its embedding for every model the unit can run (the NPU's
and the CPU fallback's); the unit loads the vectors of the model it runs, refuses a bundle without
it before decrypting anything, and the end of a deployment leaves no copy of any model's vectors.

The second model here is the CPU embedder's vectors through a fixed random projection to 256-D
under its own model id: a different, incomparable model, as the NPU's ArcFace is.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import replace
from datetime import date

import cv2
import numpy as np
import pytest

from appliance import thresholds
from appliance.errors import InputError, ModelError, WatchlistError
from appliance.watchlist import payload, verify
from appliance.watchlist.manifest import canonical_json, parse_manifest
from appliance.vision.engine import EnrolmentReject
from lfr_tools.backoffice.authority import load_authority
from lfr_tools.backoffice.build import build_bundle
from lfr_tools.backoffice.seal import Operation, seal_entries

from watchlist_helpers import MODEL_ID, make_unit, synthetic_entries, window, write_bundle


@pytest.fixture(autouse=True)
def toy_models_borrow_the_cpu_card(monkeypatch):
    """A deployment needs its model's accuracy card (G7); the toy models here have none, so
    they borrow the shipped CPU model's list-size rule (the format is what these tests test)."""
    real = thresholds.rule_for

    def rule_for(model_id, card_dir=thresholds.CARD_DIR):
        try:
            return real(model_id, card_dir)
        except ModelError:
            return replace(real(thresholds.unit_model_id(), card_dir), model_id=model_id)

    monkeypatch.setattr(thresholds, "rule_for", rule_for)

OTHER = "proj256@0123456789ab"
TODAY = date(2026, 11, 28)


class ProjectedEngine:
    """Another embedding model: the wrapped engine's vectors projected to 256-D, its own model id."""

    def __init__(self, engine, refuse: set[str] = frozenset()) -> None:
        self.engine, self.model_id, self.refuse = engine, OTHER, refuse
        self.matrix = np.random.default_rng(42).normal(size=(192, 256)).astype(np.float32)

    def project(self, vector: np.ndarray) -> np.ndarray:
        out = vector @ self.matrix
        return (out / np.linalg.norm(out)).astype(np.float32)

    def enrol_image(self, image):
        if hashlib.sha1(image.tobytes()).hexdigest() in self.refuse:
            raise EnrolmentReject("no_face")
        enrolment = self.engine.enrol_image(image)
        return replace(enrolment, embedding=self.project(enrolment.embedding), model_id=OTHER)


def two_model_entries(count: int = 6) -> list[payload.Entry]:
    rng = np.random.default_rng(9)
    other = rng.normal(size=(count, 256)).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    return [replace(e, embeddings={MODEL_ID: e.embedding, OTHER: other[i]})
            for i, e in enumerate(synthetic_entries(count, seed=3))]


def seal_two(unit, entries, models=None, version: int = 1) -> bytes:
    start, end = window()
    operation = Operation("OP-MULTI-1", "PS-4521", start, end, unit.recipient, version)
    return seal_entries(operation, entries, load_authority(unit.authority_dir), models)


@pytest.fixture()
def unit(tmp_path):
    return make_unit(tmp_path)


def test_a_bundle_lists_every_model_and_each_unit_loads_the_one_it_runs(unit, tmp_path):
    entries = two_model_entries()
    for version, (model_id, dim) in enumerate(((MODEL_ID, 192), (OTHER, 256)), start=1):
        path = write_bundle(tmp_path, seal_two(unit, entries, version=version), f"v{version}.lfrwl")
        dep = unit.deployment(model_id=model_id)  # the same bundle, a unit running either model
        record = dep.start(path, "Test Street")
        watchlist = dep.current_watchlist()
        assert record.model_id == model_id and watchlist.model_id == model_id
        assert watchlist.matrix.shape == (6, dim)
        assert np.array_equal(watchlist.matrix, np.stack([e.embeddings[model_id] for e in entries]))
        assert watchlist.top1(watchlist.matrix[[2]])[0].tolist() == [2]
        dep.end("test over")
        dep.close()
    loads = [f for e, f in unit.events if e == "watchlist_load"]
    assert [f["model_id"] for f in loads] == [MODEL_ID, OTHER]


def test_the_manifest_names_the_models_and_their_dimensions(unit, tmp_path):
    from appliance.watchlist.container import read_bundle

    bundle = read_bundle(write_bundle(tmp_path, seal_two(unit, two_model_entries())), 1 << 24)
    assert bundle.manifest.model_ids == (MODEL_ID, OTHER)
    assert bundle.manifest.dim_of(OTHER) == 256 and bundle.manifest.dim_of("absent@000000000000") is None
    assert bundle.manifest.format == "lfr-watchlist/2"


def test_a_unit_whose_model_is_absent_refuses_the_bundle_before_decrypting(unit, tmp_path, monkeypatch):
    path = write_bundle(tmp_path, seal_two(unit, two_model_entries()))
    decrypted = []
    monkeypatch.setattr(verify, "decrypt_with", lambda *a: decrypted.append(a) or bytearray())
    dep = unit.deployment(model_id="arcface_mobilefacenet-hailo8l@aaaaaaaaaaaa")
    with pytest.raises(WatchlistError) as err:
        dep.start(path, "Test Street")
    assert f"enrolled with model(s) {MODEL_ID}, {OTHER}; this unit runs arcface_mobilefacenet-hailo8l" in err.value.message
    assert "--models" in err.value.fix
    assert decrypted == [] and dep.current_watchlist() is None and unit.keys.deployment_names() == []


def test_every_entry_must_carry_every_model(unit):
    entries = two_model_entries()
    entries[3] = replace(entries[3], embeddings={MODEL_ID: entries[3].embeddings[MODEL_ID]})
    with pytest.raises(InputError, match=f"has no {OTHER} embedding"):  # refused before sealing
        seal_two(unit, entries, [(MODEL_ID, 192), (OTHER, 256)])


def test_the_end_of_a_deployment_leaves_no_copy_of_any_models_vectors(unit, tmp_path, monkeypatch):
    entries = two_model_entries()
    path = write_bundle(tmp_path / "office", seal_two(unit, entries))
    plaintexts = []
    real = verify.decrypt_with
    monkeypatch.setattr(verify, "decrypt_with", lambda *a: plaintexts.append(real(*a)) or plaintexts[-1])
    dep = unit.deployment(model_id=OTHER)
    dep.start(path, "Test Street")
    watchlist = dep.current_watchlist()
    assert plaintexts and all(not any(p) for p in plaintexts), "the decrypted payload is wiped after loading"
    assert not hasattr(watchlist, "models") and watchlist.matrix.shape[1] == 256  # the 192-D vectors never left it
    needles = [e.embeddings[m].astype("<f4").tobytes()[:64] for e in entries for m in (MODEL_ID, OTHER)]
    stored = [p.read_bytes() for p in (unit.data_dir / "watchlists").rglob("*") if p.is_file()]
    assert stored and not any(n in blob for n in needles for blob in stored), "only ciphertext at rest"
    dep.end("operation over")
    assert not watchlist.matrix.any() and len(watchlist) == 0
    assert unit.keys.deployment_names() == [] and not any((unit.data_dir / "watchlists").iterdir())
    assert {"watchlist_purge", "deployment_end"} <= {e for e, _ in unit.events}


def test_payload_without_the_requested_model_is_refused():
    plain = bytearray(payload.encode(two_model_entries(2), [(MODEL_ID, 192), (OTHER, 256)]))
    assert payload.decode(bytearray(plain), "OP", OTHER).matrix.shape == (2, 256)
    with pytest.raises(WatchlistError, match="carries no nope@000000000000 embeddings"):
        payload.decode(plain, "OP", "nope@000000000000")


@pytest.mark.parametrize("models, why", [
    ([], "1..8"),
    ([{"model_id": MODEL_ID, "embedding_dim": 192}] * 2, "twice"),
    ([{"model_id": MODEL_ID, "embedding_dim": 0}], "1..4096"),
    ([{"model_id": MODEL_ID}], "exactly"),
    ("mobilefacenet", "must be list"),
])
def test_manifest_model_lists_are_checked(unit, tmp_path, models, why):
    from appliance.watchlist.container import read_bundle

    good = read_bundle(write_bundle(tmp_path, seal_two(unit, two_model_entries())), 1 << 24).manifest.summary()
    raw = canonical_json({**good, "models": models})
    with pytest.raises(WatchlistError, match=why):
        parse_manifest(raw)


@pytest.mark.dataset
def test_the_back_office_enrols_each_image_with_every_model(engine, lfw, tmp_path):
    unit = make_unit(tmp_path)
    folders = [f for f in sorted(lfw.iterdir()) if len(list(f.glob("*.jpg"))) >= 1][:4]
    rows = [{"subject_ref": f"LFW-{i}", "image": f"{f.name}/{sorted(f.glob('*.jpg'))[0].name}",
             "category": "wanted:test", "image_source": "custody:LFW-dev", "capture_date": "2026-02-01",
             "review_by": "2027-06-01"} for i, f in enumerate(folders)]
    with open(tmp_path / "entries.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    refused = hashlib.sha1(cv2.imread(str(lfw / rows[1]["image"])).tobytes()).hexdigest()
    other = ProjectedEngine(engine, refuse={refused})
    start, end = window()
    operation = Operation("OP-LFW-2", "Supt-4521", start, end, unit.recipient)
    out = tmp_path / "two.lfrwl"
    report = build_bundle(tmp_path / "entries.csv", lfw, operation, [engine, other],
                          load_authority(unit.authority_dir), out, today=TODAY, show_progress=False)
    assert [(r.subject_ref, r.reason) for r in report.rejects if r.reason.endswith(OTHER)] == \
        [("LFW-1", f"no_face@{OTHER}")]  # the row the second model cannot enrol is refused whole
    dep = unit.deployment(model_id=OTHER)
    dep.start(out, "Test Yard")
    watchlist = dep.current_watchlist()
    assert "LFW-1" not in watchlist.subject_refs and len(watchlist) == report.accepted >= 2
    ref = watchlist.subject_refs[0]
    image = cv2.imread(str(lfw / next(r["image"] for r in rows if r["subject_ref"] == ref)))
    assert np.allclose(watchlist.matrix[0], other.project(engine.enrol_image(image).embedding), atol=1e-5)


def test_build_models_option_names_the_engines_and_what_each_needs():
    from appliance.errors import BackendUnavailable, UsageError
    from appliance.inference import hailo
    from lfr_tools.commands.backoffice import enrolment_engines

    [cpu] = enrolment_engines(None, "mobilefacenet")
    assert cpu.model_id == MODEL_ID and cpu.detector.search.tile_sizes == () and cpu.detector.search.whole_frame  # portraits: whole image only
    cpu.close()
    with pytest.raises(UsageError, match="unknown embedding model 'resnet'") as err:
        enrolment_engines(None, "mobilefacenet,resnet")
    assert "arcface_mobilefacenet-hailo8l" in err.value.fix
    with pytest.raises(UsageError, match="each model once"):
        enrolment_engines(None, "mobilefacenet,mobilefacenet")
    if hailo.probe() is not None:
        with pytest.raises(BackendUnavailable, match="needs a Hailo hailo8l card here") as err:
            enrolment_engines(None, "mobilefacenet,arcface_mobilefacenet-hailo8l")
        assert "depot" in err.value.fix
