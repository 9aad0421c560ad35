"""Retention on the unit: alert images leave the data directory once delivered, after the window
at the latest, and at deployment end; the audit log keeps their hashes only.

Alerts go through the real publisher into the real SQLite outbox; the window is passed by
moving the retention's clock, then every file under the data directory (the outbox with its
WAL, the audit log) is searched for the images, raw and base64.
"""
from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest

from appliance.audit.log import AuditLog, iter_entries, connect
from appliance.config import Config, RetentionConfig
from appliance.errors import AuditError
from appliance.mqtt.outbox import Outbox
from appliance.mqtt.publisher import AlertPublisher, OUTBOX_FILE
from appliance.retention import AlertImageRetention
from conftest import provision
from mqtt_helpers import make_alert, new_keystore, unit_config, van_broker, van_certs  # noqa: F401 - fixtures

DAY = 86400.0


def distinct_jpeg(seed: int) -> bytes:
    import cv2
    import numpy as np

    img = np.random.default_rng(1000 + seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def traces(data_dir: Path, images: list[bytes]) -> list[str]:
    """Files under data_dir holding any image, raw or as base64: a 48-byte run from the middle of
    the entropy-coded data (JPEG headers and tables are the same in every image)."""
    needles = []
    for image in images:
        middle = len(image) // 2
        encoded = base64.b64encode(image)
        needles += [image[middle:middle + 48], encoded[middle // 3 * 4:middle // 3 * 4 + 64]]
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [path.name for needle in needles if needle in data]
    return sorted(set(found))


class Unit:
    """A unit's data dir with its audit log and a publisher whose broker is down (alerts stay pending)."""

    def __init__(self, root: Path, certs: Path, port: int) -> None:
        self.data_dir = provision(root / "data")
        self.cfg = unit_config(certs, port).model_copy(update={"unit": Config().unit.model_copy(
            update={"data_dir": str(self.data_dir)})})
        store = new_keystore(root / "pubkeys")
        self.log = AuditLog.open(self.data_dir / "audit.db", store.signing_key(), "van-dev-01")
        self.publisher = AlertPublisher.open(self.cfg, store, self.data_dir / OUTBOX_FILE)
        self.images: list[bytes] = []

    def alert(self, seed: int, deployment: str) -> str:
        face, ref = distinct_jpeg(seed), distinct_jpeg(seed + 500)
        self.images += [face, ref]
        return self.publisher.submit(make_alert(track_id=seed, deployment_id=deployment, face_jpeg=face,
                                                reference_jpeg=ref))

    def retention(self, clock, audit=None) -> AlertImageRetention:
        outbox = Outbox(self.data_dir / OUTBOX_FILE)
        return AlertImageRetention(outbox, audit or self.log.append,
                                   alert_images_hours=RetentionConfig().alert_images_hours,
                                   resend_window_s=self.publisher.resend_window_s, clock=clock)

    def audited(self, kind: str) -> list[dict]:
        import json

        db = connect(self.data_dir / "audit.db", readonly=True)
        try:
            entries = [json.loads(body) for _seq, body, _leaf in iter_entries(db, 0)]
        finally:
            db.conn.close()
        return [e["payload"] for e in entries if e["type"] == kind]

    def close(self) -> None:
        self.publisher.close(timeout=0.5)
        self.log.close()


@pytest.fixture
def offline_unit(tmp_path, van_certs):
    from lfr_tools.broker import free_port

    unit = Unit(tmp_path, van_certs, free_port())  # nothing listens: every alert stays pending
    yield unit
    unit.close()


def test_undelivered_images_stay_within_the_window_and_are_gone_after_it(offline_unit):
    unit = offline_unit
    ids = [unit.alert(i, "OP-A") for i in range(3)]
    assert traces(unit.data_dir, unit.images)  # the scan finds them while they are held
    start = time.time()
    assert unit.retention(lambda: start + 23 * 3600).sweep() == 0  # inside 24 h: an alert is never lost
    assert unit.publisher.outbox.pending_count() == 3
    retention = unit.retention(lambda: start + DAY + 60)
    assert retention.sweep() == 3
    retention.outbox.close()
    assert traces(unit.data_dir, unit.images) == []
    deleted = unit.audited("alert_images_deleted")
    assert sorted(d["alert_id"] for d in deleted) == sorted(ids)
    assert {d["reason"] for d in deleted} == {"retention"} and not any(d["delivered"] for d in deleted)
    face_hashes = {d["image_hashes"]["face"] for d in deleted}
    assert face_hashes == {hashlib.sha256(img).hexdigest() for img in unit.images[0::2]}
    assert {unit.publisher.outbox.state(i) for i in ids} == {"expired"}


def test_deployment_end_deletes_that_deployments_images_only(offline_unit):
    unit = offline_unit
    a = [unit.alert(i, "OP-A") for i in range(2)]
    b = unit.alert(7, "OP-B")
    retention = unit.retention(time.time)
    assert retention.deployment_ended("OP-A") == 2
    retention.outbox.close()
    assert traces(unit.data_dir, unit.images[:4]) == []
    assert traces(unit.data_dir, unit.images[4:]) != []
    deleted = unit.audited("alert_images_deleted")
    assert sorted(d["alert_id"] for d in deleted) == sorted(a) and b not in {d["alert_id"] for d in deleted}
    assert {(d["reason"], d["deployment_id"]) for d in deleted} == {("deployment_end", "OP-A")}


def test_images_are_deleted_even_when_the_audit_log_fails(offline_unit):
    unit = offline_unit
    unit.alert(1, "OP-A")

    def broken(kind, payload):
        raise AuditError("the audit log is full", fix="free space")

    retention = unit.retention(lambda: time.time() + 2 * DAY, audit=broken)
    assert retention.sweep() == 1 and retention.unaudited == 1
    retention.outbox.close()
    assert traces(unit.data_dir, unit.images) == []


def test_delivered_images_go_after_the_resend_window(tmp_path, van_broker, van_certs):
    unit = Unit(tmp_path, van_certs, van_broker.unit_port)
    try:
        alert_id = unit.alert(3, "OP-A")
        assert unit.publisher.flush(15), "the broker did not acknowledge the alert"
        now = time.time()
        assert unit.retention(lambda: now).sweep() == 0  # still inside the re-send window
        retention = unit.retention(lambda: now + unit.publisher.resend_window_s + 1)
        assert retention.sweep() == 1
        retention.outbox.close()
        assert traces(unit.data_dir, unit.images) == []
        (deleted,) = unit.audited("alert_images_deleted")
        assert deleted["alert_id"] == alert_id and deleted["reason"] == "delivered" and deleted["delivered"]
    finally:
        unit.close()


def test_retention_window_has_a_default_and_bounds():
    assert Config().retention.alert_images_hours == 24.0
    from appliance.config import parse_config
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match="alert_images_hours"):
        parse_config({"retention": {"alert_images_hours": 0.0}}, Path("x.toml"))


def test_secure_delete_is_what_keeps_deleted_images_out_of_free_pages(tmp_path):
    """SQLite builds differ (Debian's defaults secure_delete on); the outbox sets it itself."""
    outbox = Outbox(tmp_path / OUTBOX_FILE)
    assert outbox._db.execute("PRAGMA secure_delete").fetchone() == (1,)
    outbox._db.execute("PRAGMA secure_delete=OFF")  # what a build defaulting to off would do
    image = distinct_jpeg(42)
    payload = ('{"deployment_id":"OP-A","face_jpeg":"%s"}' % base64.b64encode(image).decode()).encode()
    outbox.add("a-1", "lfr/v1/van-dev-01/alert", payload, time.time())
    assert outbox.delete_images(["a-1"], time.time()) == 1
    outbox.close()
    assert traces(tmp_path, [image]) == ["outbox.db"]
