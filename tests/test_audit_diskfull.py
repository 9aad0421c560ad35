"""Disk full: on a small filesystem, appends fail with AuditError, status says the log is full,
the runner stops matching, and nothing committed is lost.

The small filesystem is a size-limited tmpfs (mount needs root); failing that a loop-mounted
ext4 image; the test skips, saying why, when neither can be made.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.audit.export import export_log
from appliance.audit.log import AuditLog, connect, iter_entries
from appliance.audit.sink import AuditSink
from appliance.sinks import DurableCommit
from appliance.audit.verify import verify_export
from appliance.errors import AuditError
from tests.audit_helpers import new_key

SMALL = "1m"


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


@contextmanager
def small_filesystem(where: Path):
    """Mount a 1 MiB filesystem at ``where``; yield (kind, grow) where grow() enlarges it."""
    where.mkdir()
    if os.geteuid() == 0 and _run("mount", "-t", "tmpfs", "-o", f"size={SMALL},mode=0700", "tmpfs", str(where)):
        try:
            yield "tmpfs", lambda: _run("mount", "-o", "remount,size=16m", str(where))
        finally:
            _run("umount", "-l", str(where))
        return
    image = where.with_suffix(".img")
    if (os.geteuid() == 0 and _run("truncate", "-s", "2M", str(image))
            and _run("mkfs.ext4", "-q", str(image)) and _run("mount", "-o", "loop", str(image), str(where))):
        try:
            yield "loop-ext4", None
        finally:
            _run("umount", "-l", str(where))
        return
    pytest.skip("cannot mount a small tmpfs or loop filesystem here (needs root); "
                "PRAGMA max_page_count was not substituted")


def _committed(db: Path) -> dict[int, dict]:
    store = connect(db, readonly=True)
    try:
        return {seq: json.loads(body) for seq, body, _leaf in iter_entries(store)}
    finally:
        store.conn.close()


def _fill_until_full(log: AuditLog) -> tuple[list[int], AuditError]:
    committed = []
    for i in range(100000):
        try:
            committed.append(log.append("fault", {"kind": "disk_low", "detail": f"filler {i} " + "x" * 150}))
        except AuditError as exc:
            return committed, exc
    raise AssertionError("a 1 MiB filesystem never filled up")


def _check_after_growing(db: Path, key, grow, committed: set[int], out: Path) -> None:
    stored = _committed(db)
    assert committed <= set(stored), f"committed entries lost: {sorted(committed - set(stored))[:10]}"
    if grow is None:
        return
    assert grow(), "could not enlarge the tmpfs"
    log = AuditLog.open(db, key, "van-full")
    log.close()
    export_log(db, out)
    verdict = verify_export(out, key.public_key())
    assert verdict.ok, verdict.render()
    assert committed <= set(range(verdict.facts["tree_size"]))


def test_disk_full_fails_closed_and_keeps_committed(tmp_path):
    key = new_key()
    with small_filesystem(tmp_path / "small") as (kind, grow):
        db = tmp_path / "small" / "audit.db"
        log = AuditLog.open(db, key, "van-full", head_every_n=16, head_every_s=3600)
        committed, error = _fill_until_full(log)
        status = log.status()
        assert status["state"] == "full", status
        assert "full" in error.message and "no space" in error.message and error.fix
        assert status["reason"] == error.message and status["entries"] == len(committed) + 1
        with pytest.raises(AuditError):
            log.append("fault", {"kind": "other", "detail": "still full"})
        with pytest.raises(AuditError):
            log.close()  # the final head cannot be written either; the connection is closed anyway
        print(f"\n{kind}: {len(committed)} entries committed before the disk filled: {error.message}")
        _check_after_growing(db, key, grow, set(committed), tmp_path / "export.jsonl")


class _AlertEveryFrame:
    """Stands in for the vision engine: one alert per frame, so every frame needs an audit entry."""

    def __init__(self) -> None:
        self.counters = Counter()

    def analyse(self, frame):
        """The runner's first stage (detect/track in the real processor): pass the frame on."""
        return frame

    def finish(self, frame):
        """The runner's second stage (embed/match/decide): one alert per frame."""
        from appliance.pipeline.alert import Alert

        self.counters["frames"] += 1
        self.counters["faces_seen"] += 1
        return [Alert(unit="van-full", camera="cam0", deployment_id="op-full-1", subject_ref="S-0001",
                      category="test", score=0.8, threshold=0.55, model_id="mobilefacenet@test",
                      track_id=frame.seq, frame_seq=frame.seq, quality={}, capture_t_mono=frame.t_mono,
                      face_jpeg=b"\xff\xd8crop", alert_id=str(uuid.uuid4()))]


def test_runner_stops_matching_when_the_audit_log_is_full(tmp_path):
    """Real runner, real replay source, real audit log on a full filesystem."""
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    from appliance.capture.replay import ReplaySource
    from appliance.pipeline.runner import Runner

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((8, 8, 3), i * 40, np.uint8))
    key = new_key()
    with small_filesystem(tmp_path / "small") as (_kind, grow):
        db = tmp_path / "small" / "audit.db"
        log = AuditLog.open(db, key, "van-full", head_every_n=16, head_every_s=3600)
        sink, published, commit = AuditSink(log), [], DurableCommit(log)

        def deliver(alert):
            commit(alert)
            published.append(alert)

        runner = Runner(_AlertEveryFrame(), ReplaySource(frames, 0.0, True, "cam0"), 2,
                        deliver=deliver, events=sink.event)
        result = runner.run(install_signals=False)
        assert isinstance(result.error, AuditError) and "full" in result.error.message
        assert log.status()["state"] == "full"
        try:
            log.close()
        except AuditError:
            pass  # expected: no room for the final head
        audited = {e["payload"]["alert_id"] for e in _committed(db).values() if e["type"] == "alert"}
        sent = {a.alert_id for a in published}
        assert sent and sent <= audited, "an alert left without a committed audit entry"
        assert sent == audited, "every committed alert entry was followed by its alert, and no other"
        crop = b"\xff\xd8crop"
        for path in (tmp_path / "small").iterdir():  # G1: the face crop never reaches the audit files
            data = path.read_bytes()
            assert crop not in data and base64.b64encode(crop)[:8] not in data, path
        _check_after_growing(db, key, grow, set(_committed(db)), tmp_path / "export.jsonl")
    shutil.rmtree(frames)
