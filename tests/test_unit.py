"""The unit as one composition root: one key store signs everything; parts close in order."""
from __future__ import annotations

import uuid

import cv2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import numpy as np

import keystore_double
from appliance.audit.export import export_log
from appliance.audit.verify import verify_export
from appliance.config import parse_config
from appliance.keystore import KEYSTORES
from appliance.mqtt import verify
from appliance.pipeline.alert import Alert
from appliance.pipeline.frame import FrameProcessor
from appliance.unit import Unit
from mqtt_helpers import TabletClient, van_broker, van_certs  # noqa: F401 (fixtures)

UNIT = "van-dev-01"


def _alert_each_frame(self, analysed):
    frame = analysed.frame
    return [Alert(unit=UNIT, camera="cam0", deployment_id="dep-1", subject_ref="S-0001", category="test",
                  score=0.8, threshold=0.65, model_id="mobilefacenet@test", track_id=frame.seq,
                  frame_seq=frame.seq, quality={}, capture_t_mono=frame.t_mono,
                  face_jpeg=cv2.imencode(".jpg", frame.image[:32, :32])[1].tobytes(), alert_id=str(uuid.uuid4()))]


def test_a_second_key_store_backend_signs_audit_heads_and_mqtt_alerts_with_one_key(
        monkeypatch, tmp_path, engine, van_broker, van_certs):
    monkeypatch.setitem(KEYSTORES, "double", "keystore_double")
    monkeypatch.setattr(FrameProcessor, "finish", _alert_each_frame)
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(6):
        cv2.imwrite(str(clip / f"{i}.png"), np.full((96, 128, 3), 30 * i, np.uint8))
    cfg = parse_config({
        "unit": {"id": UNIT, "data_dir": str(tmp_path / "data")}, "keystore": {"backend": "double"},
        "capture": {"source": str(clip)},
        "mqtt": {"enabled": True, "port": van_broker.unit_port, "ca_file": str(van_certs / "ca.crt"),
                 "cert_file": str(van_certs / f"{UNIT}.crt"), "key_file": str(van_certs / f"{UNIT}.key")}},
        tmp_path / "unit.toml")
    tablet = TabletClient(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-double")
    tablet.wait_connected()
    opened_before = len(keystore_double.OPENED)
    with Unit.open(cfg, engine=engine) as unit:
        result = unit.run(install_signals=False)
        assert unit.publisher.flush(10)
        key = unit.keystore.verify_key()
    assert len(keystore_double.OPENED) - opened_before == 1, "the unit opens exactly one key store"
    assert not (tmp_path / "data" / "keys").exists(), "no part fell back to the file key store"
    assert result.error is None and len(result.alerts) == 6
    assert tablet.wait_for(lambda t: len(t.payloads("alert")) >= 6, 10)
    tablet.close()
    for _, payload, _ in tablet.messages:
        verify("alert", payload, key)  # raises unless signed by the double's key
    export = tmp_path / "export.jsonl"
    export_log(tmp_path / "data" / "audit.db", export)
    verdict = verify_export(export, unit_key=key)
    assert verdict.ok, verdict.render()
    assert verdict.facts["heads"] >= 2  # the start head and the final one, both under the same key
    other = Ed25519PrivateKey.generate().public_key()
    assert not verify_export(export, unit_key=other).ok, "control: another key does not verify the heads"
