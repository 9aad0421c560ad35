"""Deployment lifecycle across processes: start, resume in the runner, end, expiry, purge, sweep."""
from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from appliance.errors import AuditError, WatchlistError
from appliance.watchlist import container
from appliance.watchlist.manifest import parse_time

from watchlist_helpers import make_unit, seal, synthetic_entries, window, write_bundle


@pytest.fixture()
def unit(tmp_path):
    return make_unit(tmp_path)


@pytest.fixture(scope="module")
def entries():
    return synthetic_entries(20, seed=7)


def started(unit, entries, tmp_path, win=None, version=1):
    """Start a deployment in one Deployment instance (the CLI process) and close it."""
    starter = unit.deployment()
    record = starter.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, win=win,
                                                       version=version), f"b{version}.lfrwl"), "Market Sq")
    starter.close()
    return record


def test_runner_instance_loads_the_active_deployment(unit, entries, tmp_path):
    record = started(unit, entries, tmp_path)
    runner = unit.deployment()
    watchlist = runner.current_watchlist()
    assert watchlist is not None and watchlist.deployment_id == "OP-TEST-1"
    expected = np.stack([e.embedding for e in entries])
    assert np.array_equal(watchlist.matrix, expected)
    best, scores = watchlist.top1(expected[[3, 11]])
    assert best.tolist() == [3, 11] and np.allclose(scores, 1.0, atol=1e-5)
    assert bytes(watchlist.entries[5]["thumbnail"]) == entries[5].thumbnail
    assert unit.event_types() == ["deployment_start", "watchlist_load", "watchlist_load"]
    load = unit.events[1][1]
    chosen = {k: load.pop(k) for k in ("threshold", "expected_fpir", "target_fpir", "threshold_source",
                                       "threshold_floor")}
    assert load == {"deployment_id": "OP-TEST-1", "bundle_hash": record.bundle_sha256, "entry_count": 20,
                    "model_id": record.model_id}
    assert chosen["threshold"] == chosen["threshold_floor"], "a 20-entry list runs at the card's floor"
    assert chosen["threshold_source"] == "card" and chosen["expected_fpir"] <= chosen["target_fpir"] == 1e-3
    copy = container.read_bundle(record.copy_path, 1 << 30)
    assert copy.ciphertext != container.unpack((tmp_path / "b1.lfrwl").read_bytes()).ciphertext


def test_end_in_another_process_purges_the_runner(unit, entries, tmp_path):
    record = started(unit, entries, tmp_path)
    runner = unit.deployment(poll_seconds=0.1)
    watchlist = runner.current_watchlist()
    assert watchlist is not None
    ended = unit.deployment().end("operation over")
    assert ended.end_reason == "operation over" and ended.ended_at
    time.sleep(0.15)
    assert runner.current_watchlist() is None
    assert len(watchlist) == 0 and watchlist.matrix.size == 0 and watchlist.entries == []
    assert not (unit.data_dir / "watchlists" / "OP-TEST-1-v1.lfrwl").exists()
    assert unit.keys.deployment_names() == []
    types = unit.event_types()
    assert types[-2:] == ["deployment_end", "watchlist_purge"]
    assert unit.events[-1][1]["bundle_hash"] == record.bundle_sha256
    assert "20 entries" in unit.events[-1][1]["reason"]


def test_purge_overwrites_the_buffers_it_held(unit, entries, tmp_path):
    started(unit, entries, tmp_path)
    runner = unit.deployment()
    watchlist = runner.current_watchlist()
    matrix, codes, thumb = watchlist.matrix, watchlist.screen.codes, watchlist.entries[0]["thumbnail"]
    assert matrix.any() and codes.any()
    runner.end()
    assert not matrix.any(), "the original matrix buffer is zeroed, not just dropped"
    assert not codes.any(), "so are its int8 codes"
    assert thumb == bytearray(len(thumb)), "thumbnails are overwritten in place"


def test_timer_purges_at_not_after_without_any_call(unit, entries, tmp_path):
    started(unit, entries, tmp_path, win=window(-60, 2))
    runner = unit.deployment()
    watchlist = runner.current_watchlist()
    assert watchlist is not None and len(watchlist) == 20
    deadline = parse_time(runner.records.active().not_after, "not_after")
    time.sleep(max(0.0, (deadline - runner.clock()).total_seconds()) + 2.5)  # + the in-use grace
    assert runner._loaded is None and len(watchlist) == 0
    assert runner.records.active() is None
    assert runner.records.ended()[-1].end_reason == "expired"
    assert unit.keys.deployment_names() == [] and list((unit.data_dir / "watchlists").iterdir()) == []
    assert "watchlist_expired" in unit.event_types()


def test_each_call_checks_the_window(unit, entries, tmp_path):
    started(unit, entries, tmp_path)
    now = [None]
    runner = unit.deployment()
    real = runner.clock
    runner.clock = lambda: now[0] or real()
    assert runner.current_watchlist() is not None
    now[0] = parse_time(runner.records.active().not_after, "not_after") + timedelta(seconds=1)
    assert runner.current_watchlist() is None
    assert runner.records.ended()[-1].end_reason == "expired"


def test_status_purges_an_expired_deployment_nobody_was_running(unit, entries, tmp_path):
    started(unit, entries, tmp_path, win=window(-60, 1))
    time.sleep(1.2)
    status = unit.deployment().status()
    assert status["active"] is False and status["last"]["end_reason"] == "expired"
    assert unit.keys.deployment_names() == []


def test_second_start_while_active_is_refused(unit, entries, tmp_path):
    started(unit, entries, tmp_path)
    with pytest.raises(WatchlistError, match="already active"):
        started(unit, entries, tmp_path, version=2)


def test_newer_version_after_end_is_accepted(unit, entries, tmp_path):
    started(unit, entries, tmp_path, version=1)
    unit.deployment().end()
    record = started(unit, entries, tmp_path, version=2)
    assert record.bundle_version == 2 and unit.keys.deployment_names() == ["OP-TEST-1-v2"]


def test_altered_unit_copy_is_refused_by_the_runner(unit, entries, tmp_path):
    record = started(unit, entries, tmp_path)
    data = bytearray(open(record.copy_path, "rb").read())
    data[-40] ^= 0xFF
    open(record.copy_path, "wb").write(bytes(data))
    runner = unit.deployment()
    assert runner.current_watchlist() is None
    assert unit.event_types()[-1] == "watchlist_refused"
    assert runner.current_watchlist() is None
    assert unit.event_types().count("watchlist_refused") == 1, "a broken copy is reported once, not per frame"


def test_sweep_removes_leftovers_of_an_interrupted_purge(unit, entries, tmp_path):
    record = started(unit, entries, tmp_path)
    runner = unit.deployment()
    runner.records.mark_ended(record.id, "2026-01-01T00:00:00Z", "power cut mid-purge")
    assert unit.keys.deployment_names() == ["OP-TEST-1-v1"]
    unit.deployment()  # a new process (e.g. the next `appliance run`) sweeps at start
    assert unit.keys.deployment_names() == []
    assert list((unit.data_dir / "watchlists").iterdir()) == []


def test_no_trusted_authority_means_no_start(unit, entries, tmp_path):
    dep = unit.deployment()
    dep.trust = type(dep.trust)((), dep.trust.recipient, dep.trust.model_id)
    path = write_bundle(tmp_path, seal(unit, unit.authority_dir, entries))
    with pytest.raises(WatchlistError, match="no trusted authority"):
        dep.start(path, "A")
    assert dep.records.active() is None


def test_no_load_without_its_audit_entry(unit, entries, tmp_path):
    """Fail closed: when the audit log refuses the load event, nothing is loaded or kept."""
    def broken_audit(event, fields):
        if event == "watchlist_load":
            raise AuditError("audit log is full", fix="free space")

    dep = unit.deployment()
    dep.audit = broken_audit
    with pytest.raises(AuditError):
        dep.start(write_bundle(tmp_path, seal(unit, unit.authority_dir, entries)), "A")
    assert dep.records.active() is None and dep.current_watchlist() is None
    assert unit.keys.deployment_names() == [] and not list(dep.bundle_dir.glob("*"))


def test_two_concurrent_starts_leave_exactly_one_active(unit, entries, tmp_path):
    """Two operators start at once (separate Deployment objects, as separate processes): one wins."""
    import threading

    bundles = [write_bundle(tmp_path, seal(unit, unit.authority_dir, entries, deployment_id=f"OP-{i}"),
                            f"op{i}.lfrwl") for i in range(2)]
    outcomes = []

    def start(path):
        try:
            outcomes.append(unit.deployment().start(path, "A").deployment_id)
        except WatchlistError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=start, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o in ("OP-0", "OP-1")]
    assert len(winners) == 1 and any("already active" in o for o in outcomes)
    assert unit.keys.deployment_names() == [f"{winners[0]}-v1"]
    assert [p.name for p in (unit.data_dir / "watchlists").iterdir()] == [f"{winners[0]}-v1.lfrwl"]
