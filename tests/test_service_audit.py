"""`appliance run` end to end: every alert has a committed audit entry, and the export verifies."""
from __future__ import annotations

import json

from lfr_tools.scenes import Actor, background, write_clip
from conftest import provision, run_cli
from deployment_helpers import start_deployment, trusting
from scene_helpers import lfw_people, sprite_from


def test_run_alerts_are_audited_and_the_export_verifies(engine, lfw, tmp_path):
    people = [p for p in lfw_people(lfw, min_images=2)][:6]
    wanted, other = people[0], people[1]
    sprites = [sprite_from(engine, sorted(p.glob("*.jpg"))[1], p.name) for p in (wanted, other)]
    actors = [Actor(s, 0, 24, (200.0 + 500 * i, 300.0), (500.0 + 500 * i, 320.0), 90)
              for i, s in enumerate(sprites)]
    write_clip(tmp_path / "clip", background((1280, 720), seed=5), actors, 25)
    data = provision(tmp_path / "data")
    cfg = tmp_path / "unit.toml"
    cfg.write_text(trusting(f'[unit]\ndata_dir = "{data}"\n[capture]\nsource = "{tmp_path / "clip"}"\nfps = 0.0\n',
                            tmp_path / "back-office"))
    start_deployment(cfg, {"WANTED-1": sorted(wanted.glob("*.jpg"))[0]}, engine)
    run = run_cli("run", "--config", str(cfg))
    assert run.returncode == 0, run.stderr
    alerts = [json.loads(line) for line in run.stdout.splitlines()]
    assert [a["subject_ref"] for a in alerts] == ["WANTED-1"]

    export = tmp_path / "export.jsonl"
    assert run_cli("audit", "export", "--config", str(cfg), "--out", str(export)).returncode == 0
    verify = run_cli("audit", "verify", str(export), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = export.read_text()
    for needle in ("service_start", "service_stop", "counters", alerts[0]["alert_id"]):
        assert needle in text, needle
