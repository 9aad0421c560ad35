"""Watchlists with the real engine and the real pipeline: expiry while running, no plaintext at rest."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.config import Config
from appliance.audit.log import connect, iter_entries
from appliance.unit import Unit as AppUnit
from lfr_tools.replay import replay
from appliance.watchlist import payload
from appliance.watchlist.manifest import parse_time
from appliance.watchlist.payload import Entry

from watchlist_helpers import MODEL_ID, make_unit, seal, synthetic_entries, window, write_bundle


def people(lfw: Path, count: int, min_images: int = 2) -> list[list[Path]]:
    """The first ``count`` identities (sorted) with at least ``min_images`` photos."""
    found = []
    for folder in sorted(lfw.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= min_images:
            found.append(images)
            if len(found) == count:
                break
    return found


def enrol(engine, path: Path, ref: str) -> Entry | None:
    """An Entry from one photo with the unit's engine, or None when the engine rejects it."""
    from appliance.vision.engine import EnrolmentReject

    try:
        e = engine.enrol_image(cv2.imread(str(path)))
    except EnrolmentReject:
        return None
    return Entry(ref, "wanted:test", "custody:LFW", "2026-01-01", "2027-01-01", {e.model_id: e.embedding},
                 e.thumbnail_jpeg)


def enrolled_people(engine, lfw: Path, count: int) -> list[tuple[Entry, Path]]:
    """``count`` enrolled identities and the photo each was enrolled from."""
    out = []
    for i, images in enumerate(people(lfw, 40)):
        entry = enrol(engine, images[0], f"LFW-{i:03d}")
        if entry is not None:
            out.append((entry, images[0]))
        if len(out) == count:
            return out
    pytest.fail("too few enrollable identities in lfw-dev")


def frames_folder(folder: Path, photos: list[Path], repeat: int) -> Path:
    """A replay folder: each photo copied ``repeat`` times in order."""
    folder.mkdir(parents=True)
    n = 0
    for photo in photos:
        for _ in range(repeat):
            shutil.copy(photo, folder / f"frame_{n:04d}.jpg")
            n += 1
    return folder


def passes_folder(folder: Path, photo: Path, passes: int, face_frames: int = 3, gap_frames: int = 2) -> Path:
    """A replay folder where the same person walks past ``passes`` times (a new track each time)."""
    folder.mkdir(parents=True)
    image = cv2.imread(str(photo))
    blank = np.full_like(image, 128)
    n = 0
    for _ in range(passes):
        for frame in [image] * face_frames + [blank] * gap_frames:
            cv2.imwrite(str(folder / f"frame_{n:04d}.png"), frame)
            n += 1
    return folder


def replay_config(source: Path, fps: float, data_dir: Path, max_missed_frames: int | None = None) -> Config:
    """The default config replaying ``source`` (optionally ending tracks after fewer missed frames)."""
    cfg = Config()
    update = {"capture": cfg.capture.model_copy(update={"source": str(source), "fps": fps}),
              "unit": cfg.unit.model_copy(update={"data_dir": str(data_dir)})}
    if max_missed_frames is not None:
        update["track"] = cfg.track.model_copy(update={"max_missed_frames": max_missed_frames})
    return cfg.model_copy(update=update)


def test_expiry_while_running(engine, lfw, tmp_path):
    unit = make_unit(tmp_path)
    (target, photo), = enrolled_people(engine, lfw, 1)
    entries = [target, *synthetic_entries(10, seed=3)]
    starter = unit.deployment()
    starter.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, win=window(-60, 3))), "High St")
    starter.close()
    not_after = parse_time(starter.records.active().not_after, "not_after").timestamp()

    runner = unit.deployment(poll_seconds=0.2)
    held = runner.current_watchlist()
    assert held is not None and len(held) == 11
    calls, alerts = [], []

    def provider():
        watchlist = runner.current_watchlist()
        calls.append((time.time(), watchlist is not None))
        return watchlist

    source = passes_folder(tmp_path / "frames", photo, passes=8)
    result = replay(replay_config(source, fps=5.0, data_dir=tmp_path / "run", max_missed_frames=1),
                    engine=engine, watchlist=provider, sinks={"collect": lambda a: alerts.append((time.time(), a))})

    print("expiry run counters:", dict(result.counters), "alerts:", len(alerts))
    assert result.error is None
    assert alerts and all(t < not_after + 3.0 for t, _ in alerts), "alerts only from frames inside the window"
    assert {a.subject_ref for _, a in alerts} == {target.subject_ref}
    assert result.counters["matches"] >= 2, "it matched while the deployment was live"
    assert result.counters["faces_unmatched_no_watchlist"] >= 6, "and stopped matching by itself after"
    assert len(alerts) < 8, "the later passes of the same person raised no alert"
    assert any(ok for _, ok in calls) and not any(ok for t, ok in calls if t > not_after + 0.05)
    assert len(held) == 0 and not held.matrix.any()
    assert runner.records.ended()[-1].end_reason == "expired"
    assert unit.keys.deployment_names() == [] and list((unit.data_dir / "watchlists").iterdir()) == []
    assert {"watchlist_expired", "watchlist_purge", "deployment_end"} <= set(unit.event_types())


def needles(entries: list[Entry]) -> list[bytes]:
    """Byte runs that identify the bundle's biometrics: embedding rows and thumbnail middles."""
    out = []
    for entry in entries:
        row = entry.embedding.astype("<f4").tobytes()
        out += [row[:48], row[360:408]]
        middle = len(entry.thumbnail) // 2
        out.append(entry.thumbnail[middle:middle + 64])
    return out


def files_to_scan(roots: list[Path], since: float) -> list[Path]:
    """Every regular file under ``roots`` changed since ``since`` (data dir: every file)."""
    found = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                if st.st_mtime >= since and st.st_size < 200 * 1024 * 1024:
                    found.append(path)
    return found


def hits(paths: list[Path], runs: list[bytes]) -> list[str]:
    """Files that contain any of ``runs``."""
    bad = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(run in data for run in runs):
            bad.append(str(path))
    return bad


def test_no_plaintext_at_rest(engine, lfw, tmp_path):
    t0 = time.time() - 1
    unit = make_unit(tmp_path)
    enrolled = enrolled_people(engine, lfw, 3)
    entries = [e for e, _ in enrolled] + synthetic_entries(20, seed=5)
    runs = needles(entries)
    plain = payload.encode(entries, [(MODEL_ID, 192)])
    assert sum(run in plain for run in runs) == len(runs), "control: every needle is in the plaintext"

    bundle = write_bundle(tmp_path / "backoffice", seal(unit, unit.authority_dir, entries))
    starter = unit.deployment()
    starter.start(bundle, "Station Rd")
    starter.close()
    strangers = [images[0] for images in people(lfw, 60)[45:48]]
    source = frames_folder(tmp_path / "frames", [enrolled[0][1], *strangers], repeat=3)
    cfg = replay_config(source, fps=0.0, data_dir=unit.data_dir)  # how `appliance run` finds the deployment
    authority = (unit.authority_dir / "authority-ed25519.pub").read_text().strip()
    cfg = cfg.model_copy(update={"watchlist": cfg.watchlist.model_copy(update={"trusted_authorities": [authority]})})
    with AppUnit.open(cfg, engine=engine) as app:
        result = app.run(install_signals=False)
        seen = [json.loads(body)["type"] for _, body, _ in iter_entries(connect(app.audit.db_path, readonly=True))]
    assert result.error is None and result.counters["matches"] >= 1
    assert "watchlist_load" in seen, "the run process loaded the deployment and audited it"
    unit.deployment().end("end of operation")

    roots = [unit.data_dir, tmp_path, Path(tempfile.gettempdir())]
    scanned = files_to_scan(roots, since=t0)
    sqlite_files = [p for p in scanned if p.name.startswith("appliance.db")]
    assert sqlite_files and any(p.suffix == ".db" for p in sqlite_files), "the SQLite files were scanned"
    assert bundle in scanned
    assert hits(scanned, runs) == []
    leak = tmp_path / "control-leak.bin"
    leak.write_bytes(plain)
    assert hits(files_to_scan([tmp_path], since=t0), runs) == [str(leak)], "control: the scan finds a leak"


def test_no_matching_outside_a_deployment(engine, lfw, tmp_path):
    """G10: with [watchlist] trusting an authority but no active deployment, nothing is matched."""
    unit = make_unit(tmp_path)
    (_, photo), = enrolled_people(engine, lfw, 1)
    cfg = replay_config(frames_folder(tmp_path / "frames", [photo], repeat=4), fps=0.0, data_dir=unit.data_dir)
    authority = (unit.authority_dir / "authority-ed25519.pub").read_text().strip()
    cfg = cfg.model_copy(update={"watchlist": cfg.watchlist.model_copy(update={"trusted_authorities": [authority]})})
    with AppUnit.open(cfg, engine=engine) as app:  # the deployment's provider, as `appliance run` has it
        result = app.run(install_signals=False)
    assert result.error is None and not result.alerts
    assert result.counters["faces_unmatched_no_watchlist"] >= 1 and result.counters["matches"] == 0
