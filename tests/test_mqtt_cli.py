"""`appliance mqtt` commands: schemas written as the unit enforces them; outbox counts."""
from __future__ import annotations

import json

from appliance.cli import main
from appliance.mqtt.outbox import Outbox
from appliance.mqtt.schemas import SCHEMAS


def test_mqtt_schemas_writes_every_schema(tmp_path, capsys):
    assert main(["mqtt", "schemas", "--out", str(tmp_path)]) == 0
    for kind, schema in SCHEMAS.items():
        assert json.loads((tmp_path / f"{kind}.json").read_text()) == schema


def test_mqtt_outbox_prints_counts(tmp_path, capsys):
    box = Outbox(tmp_path / "outbox.db")
    box.add("a1", "t", b"x", 1.0)
    box.add("a2", "t", b"x", 2.0)
    box.delivered(["a2"], 3.0)
    box.close()
    assert main(["mqtt", "outbox", "--db", str(tmp_path / "outbox.db")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pending_rows"] == 1 and out["alerts"] == {"pending": 1, "delivered": 1, "expired": 0}


def test_mqtt_commands_have_help(capsys):
    for args in (["mqtt", "--help"], ["mqtt", "schemas", "--help"], ["mqtt", "outbox", "--help"]):
        try:
            main(args)
        except SystemExit as exc:
            assert exc.code == 0
        assert "usage:" in capsys.readouterr().out


def test_mqtt_outbox_without_a_database_names_the_fix(tmp_path, capsys):
    assert main(["mqtt", "outbox", "--db", str(tmp_path / "none.db")]) == 2
    err = capsys.readouterr().err
    assert "no alert outbox" in err and "fix:" in err
    assert not (tmp_path / "none.db").exists()
