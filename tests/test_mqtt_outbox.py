"""The durable alert outbox (real SQLite, no broker)."""
from __future__ import annotations

import pytest

from appliance.mqtt.outbox import Outbox

T0 = 1_800_000_000.0


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "appliance.db")
    yield box
    box.close()


def test_row_leaves_only_when_delivered(outbox):
    assert outbox.add("a1", "lfr/v1/u/alert", b"{}", T0)
    assert [r.alert_id for r in outbox.due(T0, 10, set())] == ["a1"]
    assert outbox.due(T0, 10, {"a1"}) == []
    assert outbox.state("a1") == "pending" and outbox.pending_count() == 1
    outbox.attempted(["a1"])
    assert outbox.due(T0, 10, set())[0].attempts == 1
    assert outbox.delivered(["a1"], T0 + 1) == 1
    assert outbox.pending_count() == 0 and outbox.state("a1") == "delivered"
    assert outbox.delivered(["a1"], T0 + 2) == 0  # a duplicate PUBACK changes nothing


def test_same_alert_id_is_not_queued_twice(outbox):
    assert outbox.add("a1", "t", b"1", T0)
    assert not outbox.add("a1", "t", b"2", T0 + 1)
    assert [r.payload for r in outbox.due(T0 + 5, 10, set())] == [b"1"]


def test_outbox_survives_reopen(tmp_path):
    box = Outbox(tmp_path / "db.sqlite")
    for i in range(5):
        box.add(f"a{i}", "t", b"x" * 1000, T0 + i)
    box.close()
    box = Outbox(tmp_path / "db.sqlite")
    assert [r.alert_id for r in box.due(T0 + 10, 100, set())] == [f"a{i}" for i in range(5)]
    box.close()


def test_oldest_first_and_limit(outbox):
    for i in (3, 1, 2):
        outbox.add(f"a{i}", "t", b"", T0 + i)
    assert [r.alert_id for r in outbox.due(T0 + 9, 2, set())] == ["a1", "a2"]
    assert [r.alert_id for r in outbox.due(T0 + 9, 2, {"a1"})] == ["a2", "a3"]


def test_refused_alert_is_kept_and_deferred(outbox):
    outbox.add("a1", "t", b"", T0)
    outbox.refused("a1", "Not authorized", T0 + 30)
    assert outbox.due(T0 + 1, 10, set()) == []
    assert [r.alert_id for r in outbox.due(T0 + 31, 10, set())] == ["a1"]
    assert outbox.state("a1") == "pending"


def test_expiry_is_audited_then_marked_never_silent(outbox):
    outbox.add("old", "t", b"images", T0)
    outbox.add("inflight", "t", b"images", T0)
    outbox.add("new", "t", b"images", T0 + 100)
    audited = []
    expired = outbox.expire(T0 + 101, 60, {"inflight"}, lambda row: audited.append(row.alert_id))
    assert expired == ["old"] and audited == ["old"]
    assert outbox.state("old") == "expired" and outbox.state("new") == "pending"
    assert {r.alert_id for r in outbox.due(T0 + 200, 10, set())} == {"inflight", "new"}
    assert outbox.counts() == {"pending": 2, "delivered": 0, "expired": 1}


def test_expiry_without_audit_keeps_the_alert(outbox):
    from appliance.errors import AuditError

    outbox.add("old", "t", b"images", T0)

    def audit_down(row):
        raise AuditError("audit log unwritable")

    with pytest.raises(AuditError):
        outbox.expire(T0 + 1000, 60, set(), audit_down)
    assert outbox.state("old") == "pending" and outbox.pending_count() == 1


def test_unwritable_database_is_a_publish_error(tmp_path):
    from appliance.errors import PublishError

    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "db").mkdir()  # a directory where the file should be
    with pytest.raises(PublishError, match="cannot open the alert outbox"):
        Outbox(tmp_path / "ro" / "db")


def test_acked_rows_are_kept_for_the_resend_window_then_purged(outbox):
    for i in range(4):
        outbox.add(f"a{i}", "t", b"img", T0 + i)
    outbox.delivered(["a0"], T0 + 10)
    outbox.delivered(["a1", "a2"], T0 + 50)
    assert outbox.pending_count() == 1 and outbox.due(T0 + 60, 10, set())[0].alert_id == "a3"
    # link lost, reconnected: what the broker acked within 30 s of its last ack is pending again
    assert outbox.resend_recent(30.0) == 2
    assert [r.alert_id for r in outbox.due(T0 + 60, 10, set())] == ["a3", "a1", "a2"]  # fresh first
    assert outbox.state("a1") == "delivered"  # the alert log keeps its first delivery
    outbox.delivered(["a1", "a2", "a3"], T0 + 70)
    assert outbox.purge_acked(T0 + 71) == 3  # a0 went with the resend step (older than the window)
    with outbox._lock:
        assert outbox._db.execute("SELECT COUNT(*) FROM mqtt_outbox").fetchone()[0] == 0
