"""Contract tests of the Hailo backend against a double of exactly the hailo_platform surface it uses.

The double (tests/fakes/hailo_platform.py) records every call and raises ContractViolation on
an out-of-order call or a request, binding or configured model left behind when the VDevice
is released, so these tests fail if the backend misuses HailoRT. The real card is exercised
by `make hw-test` (hw/hwtest.py) on a unit.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fakes import hailo_platform as fake
from appliance.errors import BackendUnavailable, InputError, ModelError
from appliance.inference import hailo
from appliance.modelstore import load_manifest, sha256_file
from appliance.vision.embed import Embedder
from appliance.vision.scrfd import SCRFDDetector

SCRFD_OUTPUTS = {f"scrfd_2_5g/conv{40 + i}": shape for i, shape in enumerate(
    [(s, s, c) for s in (80, 40, 20) for c in (8, 2, 20)])}
NETWORKS = {"scrfd_2.5g": ([640, 640, 3], SCRFD_OUTPUTS), "arcface_mobilefacenet": ([112, 112, 3], {"arcface/fc1": [512]})}


def write_hef(models: Path, chip: str, network: str, arch: str | None = None) -> Path:
    shape, outputs = NETWORKS[network]
    path = models / chip / f"{network}.hef"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arch": arch or chip.upper(), "input": shape, "outputs": outputs}))
    return path


@pytest.fixture
def card(monkeypatch, tmp_path):
    """A fake Hailo-8L with HailoRT 4.21.0, fake HEFs pinned by their real hashes in a test manifest."""
    state = fake.reset()
    monkeypatch.setitem(sys.modules, "hailo_platform", fake)
    node, driver = tmp_path / "hailo0", tmp_path / "hailo_pci.version"
    node.touch()
    driver.write_text("4.21.0\n")
    monkeypatch.setattr(hailo, "DEVICE_NODE", node)
    monkeypatch.setattr(hailo, "DRIVER_VERSION_FILE", driver)
    models = tmp_path / "models"
    real = load_manifest()
    specs = dict(real)
    for chip in ("hailo8l", "hailo8"):
        for network in NETWORKS:
            name = f"{network}-{chip}"
            specs[name] = replace(real[name], sha256=sha256_file(write_hef(models, chip, network)))
    monkeypatch.setattr("appliance.modelstore.load_manifest", lambda path=None: specs)
    monkeypatch.setattr(hailo, "load_manifest", lambda path=None: specs)
    state.models, state.specs, state.driver_file = models, specs, driver
    yield state
    assert state.violations == [], state.violations


def settings(**kw) -> hailo.Settings:
    return hailo.Settings(**kw)


def face_responder(hef_name: str, frame: np.ndarray) -> dict:
    """scrfd: one face at stride 16 (box 130,280-190,360 in the 640 input); arcface: the frame's mean colour."""
    if hef_name == "scrfd_2.5g.hef":
        out = {name: np.zeros(shape, np.float32) for name, shape in SCRFD_OUTPUTS.items()}
        out["scrfd_2_5g/conv43"][20, 10, 0:4] = np.array([160 - 130, 320 - 280, 190 - 160, 360 - 320]) / 16
        out["scrfd_2_5g/conv44"][20, 10, 0] = 0.9
        five = np.array([[150, 310], [170, 310], [160, 322], [152, 340], [168, 340]], np.float32)
        out["scrfd_2_5g/conv45"][20, 10, 0:10] = ((five - [160, 320]) / 16).reshape(-1)
        return out
    vec = np.zeros(512, np.float32)
    vec[:3] = frame.reshape(-1, 3).mean(axis=0)
    return {"arcface/fc1": vec}


def ops(state) -> list[str]:
    return [c[0] for c in state.calls]


def test_detector_and_embedder_share_one_round_robin_vdevice_and_everything_is_released(card):
    card.responder = face_responder
    with hailo.HailoDevice(settings(group_id="van7"), card.models) as device:
        detector = SCRFDDetector(device.open("scrfd_2.5g"), 0.5, 0.4)
        embedder = Embedder(device.open("arcface_mobilefacenet", batch=2), "arcface")
        dets = detector.detect(np.zeros((720, 1280, 3), np.uint8))
        faces = np.zeros((3, 112, 112, 3), np.uint8)
        faces[..., 2] = 255  # red in BGR: the network must get it as channel 0 (RGB)
        vectors = embedder.embed(faces)
        assert device.info.architecture == "HAILO8L" and device.info.firmware == "4.21.0"
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].box, [260, 560, 380, 720], atol=1e-3)  # 640 input -> 1280 frame
    assert vectors.shape == (3, 512) and np.allclose(vectors[:, 0], 1.0)  # pure red, L2-normalised
    vdevices = [c for c in card.calls if c[0] == "VDevice"]
    assert vdevices == [("VDevice", "ROUND_ROBIN", "van7")]
    assert card.open_handles() == []
    assert ops(card)[-1] == "VDevice.release" and ops(card).count("configured.exit") == 2


def test_each_request_is_bound_readied_run_and_waited_in_that_order(card):
    card.responder = face_responder
    with hailo.HailoDevice(settings(), card.models) as device:
        model = device.open("arcface_mobilefacenet", batch=2)
        model.run(np.zeros((2, 112, 112, 3), np.uint8))
        model.run(np.zeros((1, 112, 112, 3), np.uint8))
    run_ops = [o for o in ops(card) if o in ("create_bindings", "wait_for_async_ready", "run_async", "job.wait")]
    assert run_ops == ["create_bindings"] * 2 + ["wait_for_async_ready", "run_async", "job.wait"] + \
        ["create_bindings", "wait_for_async_ready", "run_async", "job.wait"]
    setup = ops(card)[:ops(card).index("configure")]
    assert "set_batch_size" in setup and setup.count("set_format_type") == 2  # input UINT8, one output FLOAT32
    formats = {c[1]: c[2] for c in card.calls if c[0] == "set_format_type"}
    assert formats["arcface/fc1"] == "FLOAT32" and set(formats.values()) == {"UINT8", "FLOAT32"}


def test_the_shared_device_is_released_with_the_last_network(card):
    detector = hailo.open_model("scrfd_2.5g", settings(), card.models)
    embedder = hailo.open_model("arcface_mobilefacenet", settings(), card.models)
    assert ops(card).count("VDevice") == 1 and embedder.input_shape == (2, 112, 112, 3)
    detector.close()
    assert "VDevice.release" not in ops(card)
    embedder.close()
    embedder.close()  # idempotent
    assert ops(card).count("VDevice.release") == 1 and card.open_handles() == []


def test_a_hef_for_the_other_chip_is_refused_before_it_is_loaded(card):
    with pytest.raises(ModelError) as err:
        with hailo.HailoDevice(settings(chip="hailo8"), card.models) as device:
            device.open("scrfd_2.5g")
    assert "compiled for HAILO8, this card is HAILO8L" in err.value.message
    assert 'chip = "hailo8l"' in err.value.fix and "fetch-hef --chip hailo8l" in err.value.fix
    assert "create_infer_model" not in ops(card) and card.open_handles() == []


def test_a_hailo8l_hef_runs_on_a_hailo8_card(card):
    card.arch = "HAILO8"
    with hailo.HailoDevice(settings(chip="hailo8l"), card.models) as device:
        assert device.open("arcface_mobilefacenet").run(np.zeros((1, 112, 112, 3), np.uint8))[0].shape == (1, 512)


def test_a_mislabelled_hef_that_hailort_refuses_is_a_model_error_and_nothing_leaks(card):
    path = write_hef(card.models, "hailo8l", "scrfd_2.5g", arch="HAILO8")  # pinned as 8L, compiled for 8
    card.specs["scrfd_2.5g-hailo8l"] = replace(card.specs["scrfd_2.5g-hailo8l"], sha256=sha256_file(path))
    with pytest.raises(ModelError) as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "HailoRTInvalidHEFException" in err.value.message and "--chip hailo8l" in err.value.fix
    assert ops(card)[-1] == "VDevice.release" and card.open_handles() == []


def test_a_driver_that_differs_from_the_library_is_refused_naming_the_fix(card):
    card.driver_file.write_text("4.20.0\n")
    with pytest.raises(BackendUnavailable) as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "library 4.21.0" in err.value.message and "driver 4.20.0" in err.value.message
    assert "hailo-all" in err.value.fix and "reboot" in err.value.fix
    assert "VDevice" not in ops(card) and "Device" not in ops(card)


def test_a_mismatch_only_hailort_sees_is_mapped_to_the_same_fix(card):
    card.driver = "4.22.0"  # the module on disk was updated, the loaded one is older: HailoRT says 76
    with pytest.raises(BackendUnavailable) as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "HAILO_INVALID_DRIVER_VERSION" in err.value.message and "hailo-all" in err.value.fix


def test_firmware_of_another_release_is_refused(card):
    card.firmware = (4, 20, 0)
    with pytest.raises(BackendUnavailable) as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "firmware 4.20.0" in err.value.message and "hailo-all" in err.value.fix
    assert "VDevice" not in ops(card)


def test_the_driver_module_not_loaded_is_named(card):
    card.driver_file.unlink()
    with pytest.raises(BackendUnavailable, match="hailo_pci kernel module is not loaded") as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "modprobe hailo_pci" in err.value.fix


def test_an_unpinned_hef_is_refused_even_when_the_file_is_there(card, monkeypatch):
    real = load_manifest()  # the shipped manifest: HEFs are "record-at-provisioning", sha256 = ""
    monkeypatch.setattr("appliance.modelstore.load_manifest", lambda path=None: real)
    monkeypatch.setattr(hailo, "load_manifest", lambda path=None: real)
    with pytest.raises(ModelError, match="no pinned SHA-256") as err:
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert "fetch-hef" in err.value.fix and "record-at-provisioning" in err.value.message
    assert "create_infer_model" not in ops(card) and card.open_handles() == []


def test_an_altered_hef_is_refused(card):
    (card.models / "hailo8l" / "scrfd_2.5g.hef").write_text("{}")
    with pytest.raises(ModelError, match="altered or corrupt"):
        hailo.open_model("scrfd_2.5g", settings(), card.models)
    assert card.open_handles() == []


def test_a_failed_request_is_reported_and_its_binding_is_not_leaked(card):
    card.fail_run = True
    model = hailo.open_model("arcface_mobilefacenet", settings(), card.models)
    with pytest.raises(BackendUnavailable, match="failed a arcface_mobilefacenet-hailo8l request"):
        model.run(np.zeros((1, 112, 112, 3), np.uint8))
    model.close()
    assert card.open_handles() == []


def test_wrong_input_is_refused_before_it_reaches_the_npu(card):
    model = hailo.open_model("arcface_mobilefacenet", settings(), card.models)
    with pytest.raises(InputError):
        model.run(np.zeros((1, 112, 112, 3), np.float32))
    with pytest.raises(InputError):
        model.run(np.zeros((3, 112, 112, 3), np.uint8))  # more frames than the batch
    model.close()
    assert "create_bindings" not in ops(card)


def test_the_double_itself_catches_a_run_without_readiness_and_a_leaked_binding(card):
    """The double must be able to fail: misuse it directly the way a broken backend would."""
    vdevice = fake.VDevice(fake.VDevice.create_params())
    with pytest.raises(fake.ContractViolation, match="ROUND_ROBIN"):
        vdevice.create_infer_model(str(card.models / "hailo8l" / "scrfd_2.5g.hef"))
    params = fake.VDevice.create_params()
    params.scheduling_algorithm = fake.HailoSchedulingAlgorithm.ROUND_ROBIN
    vdevice = fake.VDevice(params)
    configured = vdevice.create_infer_model(str(card.models / "hailo8l" / "arcface_mobilefacenet.hef")).configure()
    bindings = configured.create_bindings(output_buffers={"arcface/fc1": np.zeros(512, np.uint8)})
    bindings.input().set_buffer(np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(fake.ContractViolation, match="without wait_for_async_ready"):
        configured.run_async([bindings])
    with pytest.raises(fake.ContractViolation, match="still held"):
        vdevice.release()
    card.violations.clear()


def test_the_manifest_pins_every_network_for_both_chips_by_url_and_refuses_unpinned():
    specs = load_manifest()
    for chip in ("hailo8l", "hailo8"):
        for network in ("scrfd_2.5g", "scrfd_10g", "arcface_mobilefacenet", "arcface_r50"):
            spec = specs[f"{network}-{chip}"]
            assert spec.chip == chip and spec.npu and spec.file == f"{chip}/{network}.hef"
            assert spec.url.endswith(f"/{chip}/{network}.hef") and spec.url.startswith("https://")
            assert spec.sha256 or spec.pin == "record-at-provisioning"


def test_preflight_says_why_the_card_cannot_run_the_networks_without_loading_them(card, monkeypatch):
    assert hailo.preflight(settings(models_dir=str(card.models))) is None
    assert "create_infer_model" not in ops(card) and "VDevice" not in ops(card)
    assert "compiled for HAILO8, this card is HAILO8L" in hailo.preflight(settings(chip="hailo8", models_dir=str(card.models)))
    real = load_manifest()  # as shipped: HEF hashes still to be recorded at provisioning
    monkeypatch.setattr("appliance.modelstore.load_manifest", lambda path=None: real)
    monkeypatch.setattr(hailo, "load_manifest", lambda path=None: real)
    reason = hailo.preflight(settings(models_dir=str(card.models)))
    assert "no pinned SHA-256" in reason and "fetch-hef" in reason


def test_the_npu_engine_detects_on_lores_embeds_crops_from_main_and_releases_the_card(card):
    from appliance.config import Config
    from appliance.vision.npu import open_npu_engine

    card.responder = face_responder
    engine = open_npu_engine(Config.model_validate({"quality": {"min_sharpness": 0.0}}),
                             settings(models_dir=str(card.models)))
    main = np.full((1080, 1920, 3), 120, np.uint8)
    faces = engine.analyse(main, seq=0, lores=np.zeros((360, 640, 3), np.uint8), lores_scale=3.0)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].det.box, [390, 840, 570, 1080], atol=1e-3)  # 640 input = lores, x3
    assert faces[0].reject is None
    engine.embed_faces(faces)
    assert faces[0].embedding.shape == (512,) and engine.model_id == "arcface_mobilefacenet-hailo8l@" + \
        card.specs["arcface_mobilefacenet-hailo8l"].sha256[:12]
    engine.close()
    engine.close()
    assert card.open_handles() == [] and ops(card).count("VDevice.release") == 1
