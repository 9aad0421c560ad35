"""The audit report: faces, alerts, adjudications, the officer-verified rate (G8); and the CLI."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.audit.export import export_log
from appliance.audit.log import AuditLog
from appliance.audit.report import build_report, entries_from_db, entries_from_export
from appliance.cli import main
from appliance.errors import AuditError
from appliance.keystore import open_keystore
from tests.audit_helpers import EXAMPLES, entry_index, new_key, read_lines, write_lines

DEP = "op-kestrel-1"


def _alert(n: int, deployment: str = DEP) -> dict:
    return dict(EXAMPLES["alert"], alert_id=f"alert-{deployment}-{n}", deployment_id=deployment)


def _adjudicate(n: int, decision: str, deployment: str = DEP) -> dict:
    return dict(EXAMPLES["adjudication"], alert_id=f"alert-{deployment}-{n}", decision=decision,
                deployment_id=deployment)


def _deployment(log: AuditLog, dep: str, faces: int, decisions: list[str | None]) -> None:
    log.append("deployment_start", dict(EXAMPLES["deployment_start"], deployment_id=dep))
    log.append("counters", dict(EXAMPLES["counters"], faces_seen=faces // 2, deployment_id=dep))
    for n, decision in enumerate(decisions):
        log.append("alert", _alert(n, dep))
    log.append("counters", dict(EXAMPLES["counters"], faces_seen=faces - faces // 2, deployment_id=dep))
    for n, decision in enumerate(decisions):
        if decision:
            log.append("adjudication", _adjudicate(n, decision, dep))
    log.append("deployment_end", {"deployment_id": dep, "reason": "ended by operator"})


@pytest.fixture()
def unit_log(tmp_path):
    key = new_key()
    db = tmp_path / "audit.db"
    log = AuditLog.open(db, key, "van-01")
    # 8 alerts: 3 confirmed, 2 rejected, 1 unable, 2 never adjudicated; alert 0 first rejected then confirmed
    log.append("adjudication", _adjudicate(0, "rejected"))  # stray decision before the deployment: ignored
    _deployment(log, DEP, 4000, ["confirmed", "confirmed", "confirmed", "rejected", "rejected", "unable",
                                 None, None])
    log.append("adjudication", _adjudicate(3, "rejected"))
    _deployment(log, "op-other-2", 1000, ["rejected"])
    log.close()
    return db, key


def test_report_per_deployment(unit_log):
    db, _key = unit_log
    entries, head = entries_from_db(db)
    report = build_report(entries, DEP)
    assert report["faces_seen"] == 4000
    assert (report["alerts"], report["adjudicated"], report["not_adjudicated"]) == (8, 6, 2)
    assert (report["confirmed"], report["rejected"], report["unable"]) == (3, 2, 1)
    assert report["verified_alert_rate"] == pytest.approx(3 / 8)
    assert report["confirmed_of_decided"] == pytest.approx(3 / 5)
    assert report["false_alerts_per_1000_faces"] == pytest.approx(2 / 4000 * 1000)
    assert report["quality_rejects"] == {"size": 60, "blur": 24, "pose": 8}
    whole = build_report(entries)
    assert whole["alerts"] == 9 and whole["faces_seen"] == 5000 and whole["rejected"] == 3
    assert head["tree_size"] == len(entries)


def test_report_from_an_export_only_when_it_verifies(unit_log, tmp_path):
    db, key = unit_log
    out = tmp_path / "e.jsonl"
    export_log(db, out)
    entries, head = entries_from_export(out, key.public_key())
    assert build_report(entries, DEP)["confirmed"] == 3 and head["tree_size"] == len(entries)
    lines = read_lines(out)
    del lines[entry_index(lines, 5)]
    with pytest.raises(AuditError, match="does not verify"):
        entries_from_export(write_lines(tmp_path / "bad.jsonl", lines), key.public_key())


def test_audit_commands_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    config = tmp_path / "unit.toml"
    config.write_text(f'[unit]\nid = "van-07"\ndata_dir = "{data}"\n\n[audit]\nhead_every_entries = 4\n')
    store = open_keystore("file", data)
    store.init()
    from appliance.audit.sink import open_audit_log
    from appliance.config import load_config
    log = open_audit_log(load_config(config), store)
    _deployment(log, DEP, 100, ["confirmed", "rejected"])
    log.append("fault", EXAMPLES["fault"])  # uncovered until the export signs a head
    log.close(final_head=None)
    out = tmp_path / "e.jsonl"
    assert main(["audit", "export", "--config", str(config), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["tree_size"] == 10
    assert main(["audit", "key", "--config", str(config)]) == 0
    pem = tmp_path / "unit.pub"
    pem.write_text(capsys.readouterr().out)
    assert main(["audit", "verify", str(out), "--unit-key", str(pem)]) == 0
    assert capsys.readouterr().out.startswith("OK: 10 entries")
    raw = store.verify_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert main(["audit", "verify", str(out), "--unit-key", new_key().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()]) == 10
    assert "not the pinned key" in capsys.readouterr().out
    assert main(["audit", "report", "--config", str(config), "--deployment", DEP, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["alerts"], report["confirmed"], report["rejected"]) == (2, 1, 1)
    assert report["as_of_head"]["tree_size"] == 10
    assert main(["audit", "report", "--export", str(out), "--unit-key", raw.hex()]) == 0
    assert "officer-verified alert rate    50.0%" in capsys.readouterr().out
    assert main(["audit", "status", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["entries"] == 10 and status["uncovered"] == 0 and status["unit"] == "van-07"
    assert status["last_head"]["reason"] == "export"


def test_service_start_payload_fits_its_schema(tmp_path):
    from appliance.audit.events import validate_payload
    from appliance.audit.sink import service_start_payload
    from appliance.config import Config, load_config

    config = tmp_path / "unit.toml"
    config.write_text('[unit]\nid = "van-07"\n')
    payload = service_start_payload(load_config(config), {"mobilefacenet": "ab" * 32}, "litert")
    validate_payload("service_start", payload)
    import hashlib
    assert payload["config_hash"] == hashlib.sha256(config.read_bytes()).hexdigest()
    validate_payload("service_start", service_start_payload(Config(), {}))



def test_repeat_sightings_are_counted_apart_from_alerts_and_the_verifier_accepts_them(tmp_path, capsys):
    """Two alerts, three repeat sightings of them: alerts 2 (rates over 2), "repeat sightings
    (not alarms)" 3; the offline verifier takes the export with the repeat_sighting entries."""
    key = new_key()
    db = tmp_path / "audit.db"
    log = AuditLog.open(db, key, "van-01")
    log.append("deployment_start", dict(EXAMPLES["deployment_start"], deployment_id=DEP))
    log.append("counters", dict(EXAMPLES["counters"], faces_seen=1000, deployment_id=DEP))
    for n in range(2):
        log.append("alert", _alert(n))
    for n in range(3):
        log.append("repeat_sighting", dict(EXAMPLES["repeat_sighting"], alert_id=f"sighting-{n}",
                                           original_alert_id=_alert(n % 2)["alert_id"], deployment_id=DEP))
    log.append("adjudication", _adjudicate(0, "confirmed"))
    log.append("deployment_end", {"deployment_id": DEP, "reason": "ended by operator"})
    log.close()
    out = tmp_path / "e.jsonl"
    export_log(db, out)
    pem = tmp_path / "unit.pub"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["audit", "verify", str(out), "--unit-key", str(pem)]) == 0
    capsys.readouterr()
    entries, _head = entries_from_export(out, key.public_key())
    report = build_report(entries, DEP)
    assert (report["alerts"], report["repeat_sightings"], report["not_adjudicated"]) == (2, 3, 1)
    assert report["verified_alert_rate"] == pytest.approx(0.5)
    from appliance.audit.report import render
    assert "repeat sightings (not alarms)  3" in render(report)
