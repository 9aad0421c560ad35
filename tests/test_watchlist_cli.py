"""The back-office and unit commands end to end, as an operator runs them."""
from __future__ import annotations

import json
import shutil

import pytest

from appliance.audit.log import connect, iter_entries
from lfr_tools.backoffice.authority import init_authority
from appliance.keystore.file import FileKeyStore

from conftest import REPO, run_cli


@pytest.mark.dataset
def test_build_inspect_start_status_end(lfw, tmp_path):
    data = tmp_path / "data"
    FileKeyStore(data / "keys").init()
    trust = init_authority(tmp_path / "auth")
    cfg = tmp_path / "unit.toml"
    cfg.write_text(f'[unit]\nid = "van-cli-01"\ndata_dir = "{data}"\n'
                   f'[inference]\nmodels_dir = "{REPO / "models" / "cache"}"\n'
                   f'[watchlist]\ntrusted_authorities = ["{trust}"]\n')
    images = tmp_path / "images"
    images.mkdir()
    picked = [sorted(f.glob("*.jpg"))[0] for f in sorted(lfw.iterdir())[:3]]
    for p in picked:
        shutil.copy(p, images / p.name)
    rows = ["subject_ref,image,category,image_source,capture_date,review_by"]
    rows += [f"WL-{i},{p.name},wanted:theft,custody:T-{i},2026-01-0{i + 1},2027-01-01" for i, p in enumerate(picked)]
    rows.append("WL-9,missing.jpg,wanted:theft,,2026-01-01,2027-01-01")
    (tmp_path / "entries.csv").write_text("\n".join(rows) + "\n")
    recipient = FileKeyStore(data / "keys").age_recipient()
    bundle = tmp_path / "op.lfrwl"

    built = run_cli("watchlist", "build", "--csv", str(tmp_path / "entries.csv"), "--images", str(images),
                    "--deployment-id", "OP-CLI-2", "--officer", "Supt-77", "--not-before", "2026-01-01T00:00:00Z",
                    "--not-after", "2099-01-01T00:00:00Z", "--recipient", recipient, "--authority-dir",
                    str(tmp_path / "auth"), "--out", str(bundle), "--report", str(tmp_path / "r.json"),
                    "--config", str(cfg), "--quiet")
    assert built.returncode == 0, built.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows"] == 4 and report["by_reason"]["missing:image_source"] == 1
    assert f"{report['accepted']} of 4 rows enrolled" in built.stdout

    inspected = run_cli("watchlist", "inspect", str(bundle), "--config", str(cfg))
    assert inspected.returncode == 0, inspected.stderr
    shown = json.loads(inspected.stdout)
    assert shown["manifest"]["deployment_id"] == "OP-CLI-2" and shown["signature"].startswith("valid")
    assert shown["manifest"]["entry_count"] == report["accepted"]

    started = run_cli("deployment", "start", "--bundle", str(bundle), "--location", "Car park 2", "--config", str(cfg))
    assert started.returncode == 0, started.stderr
    status = json.loads(run_cli("deployment", "status", "--config", str(cfg)).stdout)
    assert status["active"] and status["deployment"]["location"] == "Car park 2"
    again = run_cli("deployment", "start", "--bundle", str(bundle), "--location", "X", "--config", str(cfg))
    assert again.returncode == 9 and "already active" in again.stderr and "fix:" in again.stderr

    ended = run_cli("deployment", "end", "--config", str(cfg))
    assert ended.returncode == 0 and "destroyed" in ended.stdout
    assert list((data / "watchlists").iterdir()) == [] and not list((data / "keys" / "deployments").iterdir())
    replay = run_cli("deployment", "start", "--bundle", str(bundle), "--location", "X", "--config", str(cfg))
    assert replay.returncode == 9 and "rollback refused" in replay.stderr and "Traceback" not in replay.stderr

    db = connect(data / "audit.db", readonly=True)
    entries = [json.loads(body) for _, body, _ in iter_entries(db)]
    types = [e["type"] for e in entries]
    assert types[types.index("deployment_start"):] == ["deployment_start", "watchlist_load", "deployment_end",
                                                        "watchlist_purge", "watchlist_refused"]
    load = next(e["payload"] for e in entries if e["type"] == "watchlist_load")
    assert load["bundle_hash"] == shown["bundle_sha256"] and load["entry_count"] == report["accepted"]
    assert load["threshold_source"] == "card" and load["expected_fpir"] <= load["target_fpir"], \
        "the audit log says which threshold the list ran at, and its expected FPIR (G7)"
    assert "rollback" in entries[-1]["payload"]["reason"]
