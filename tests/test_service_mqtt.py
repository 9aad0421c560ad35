"""`appliance run` with [mqtt] enabled, end to end through a real van broker (G5, G6, G8).

A replayed clip raises an alert; the unit's audit entry is committed, then the
alert is published over mutual TLS; the tablet verifies its signature and an
officer confirms it; the adjudication comes back through the broker into the
audit log, and `appliance audit report` counts it as confirmed.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from appliance.keystore.file import SIGNING_FILE
from appliance.mqtt import verify
from lfr_tools.scenes import Actor, background, write_clip
from conftest import APPLIANCE, REPO, provision, run_cli
from mqtt_helpers import TabletClient, tls_client, van_broker, van_certs  # noqa: F401 (fixtures)
from deployment_helpers import start_deployment, trusting
from scene_helpers import lfw_people, sprite_from

UNIT = "van-dev-01"


def _clip_and_config(engine, lfw, tmp_path, van_broker, van_certs):
    wanted = lfw_people(lfw, min_images=2)[0]
    sprite = sprite_from(engine, sorted(wanted.glob("*.jpg"))[1], wanted.name)
    write_clip(tmp_path / "clip", background((1280, 720), seed=2),
               [Actor(sprite, 0, 59, (200.0, 300.0), (900.0, 320.0), 90)], 60)
    data = provision(tmp_path / "data")
    cfg = tmp_path / "unit.toml"
    cfg.write_text(
        f'[unit]\nid = "{UNIT}"\ndata_dir = "{data}"\n'
        f'[capture]\nsource = "{tmp_path / "clip"}"\nfps = 10.0\n'
        f'[mqtt]\nenabled = true\nport = {van_broker.unit_port}\nca_file = "{van_certs / "ca.crt"}"\n'
        f'cert_file = "{van_certs / (UNIT + ".crt")}"\nkey_file = "{van_certs / (UNIT + ".key")}"\n'
        f'heartbeat_interval_s = 1.0\n')
    cfg.write_text(trusting(cfg.read_text(), tmp_path / "back-office"))
    start_deployment(cfg, {"WANTED-7": sorted(wanted.glob("*.jpg"))[0]}, engine)
    return cfg, data


def test_alert_over_tls_and_adjudication_back_into_the_audit_log(engine, lfw, tmp_path, van_broker, van_certs):
    cfg, data = _clip_and_config(engine, lfw, tmp_path, van_broker, van_certs)
    tablet = TabletClient(van_certs, van_broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="tablet-e2e")
    tablet.wait_connected()
    unit = subprocess.Popen([*APPLIANCE, "run", "--config", str(cfg)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert tablet.wait_for(lambda t: t.payloads("alert"), 60), "no alert reached the tablet"
        unit_key = load_pem_private_key((data / "keys" / SIGNING_FILE).read_bytes(), None).public_key()
        alert = verify("alert", tablet.messages[0][1], unit_key)
        assert alert["subject_ref"] == "WANTED-7"
        decision = {"schema": "lfr/v1/adjudication", "adjudication_id": str(uuid.uuid4()),
                    "alert_id": alert["alert_id"], "unit": UNIT, "decision": "confirm",
                    "officer_ids": ["PC-4411", "PS-0192"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        officer = tls_client(van_certs, "tablet-01", "tablet-e2e-pub")
        officer.connect("127.0.0.1", van_broker.lan_port)
        officer.loop_start()
        officer.publish(f"lfr/v1/{UNIT}/adjudication", json.dumps(decision).encode(), qos=1).wait_for_publish(5)
        officer.loop_stop()
        out, err = unit.communicate(timeout=120)
    finally:
        tablet.close()
        if unit.poll() is None:
            unit.kill()
    assert unit.returncode == 0, err[-3000:]
    report = run_cli("audit", "report", "--config", str(cfg), "--json")
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)
    text = json.dumps(figures)
    assert '"confirmed": 1' in text and '"alerts": 1' in text, text
