"""Durable alert outbox in SQLite: nothing that must not be lost lives only in memory.

The outbox tables live in the audit log's database, and the unit commits an alert's
outbox row in the same transaction as its audit entry (:func:`add_statements`): an
alert is audited and queued for the van together, or neither. Its row,
which holds the signed payload with the two JPEGs, leaves the pending set only when the
broker acknowledges it (PUBACK with a success reason code). It is then kept, marked
``acked``, for a short re-send window and deleted after it: the broker persists to disk
only every few seconds, so if the link drops within that window (the broker may have
crashed) the alerts acknowledged shortly before are sent again. A row older than the maximum age
is expired: the audit callback is called first, then the row is marked expired in
``mqtt_alert_log`` and its images are deleted, so an alert is never dropped silently.
``mqtt_alert_log`` keeps every issued alert id (no images) so adjudications can be
checked against it.

Retention (``[retention]``, :mod:`appliance.retention`): :meth:`Outbox.images_due` and
:meth:`Outbox.delete_images` remove rows, and with them the images, older than the retention
window or of a deployment that ended, whatever their delivery state. The connection runs
with ``secure_delete`` (deleted rows are overwritten with zeros in the database file) and a
purge ends with a truncating WAL checkpoint, so no copy of an image stays in either file.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import PublishError

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    alert_id     TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    payload      BLOB NOT NULL,
    created      REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error   TEXT,
    acked        REAL,
    resends      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mqtt_alert_log (
    alert_id TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    state    TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'expired')),
    settled  REAL
);
"""

ExpiredCallback = Callable[["OutboxRow"], None]
IMAGE_FIELDS = {"face": "face_jpeg", "reference": "reference_jpeg"}


@dataclass(frozen=True)
class HeldImages:
    """An outbox row seen by the retention purge: which alert, its deployment, and its images' hashes."""

    alert_id: str
    deployment_id: str
    created: float
    delivered: bool
    image_hashes: dict[str, str]


def held_images(alert_id: str, payload: bytes, created: float, delivered: bool) -> HeldImages:
    """The deployment and SHA-256 of each (base64) JPEG in a signed alert payload."""
    try:
        body = json.loads(payload)
    except ValueError:
        body = {}
    hashes = {}
    for name, key in IMAGE_FIELDS.items():
        try:
            data = base64.b64decode(body.get(key) or "", validate=True)
        except (binascii.Error, TypeError):
            data = b""
        if data:
            hashes[name] = hashlib.sha256(data).hexdigest()
    deployment = body.get("deployment_id") if isinstance(body.get("deployment_id"), str) else ""
    return HeldImages(alert_id, deployment, created, delivered, hashes)


def add_statements(alert_id: str, topic: str, payload: bytes, created: float) -> list[tuple[str, tuple]]:
    """The SQL that queues one signed alert (nothing if its id was already issued).

    The unit runs these inside the alert's audit transaction (``AuditLog.append(..., also=)``),
    so the audit entry and the outbox row are committed together or not at all.
    """
    return [
        ("INSERT OR IGNORE INTO mqtt_alert_log (alert_id, created, state) VALUES (?, ?, 'pending')",
         (alert_id, created)),
        ("INSERT INTO mqtt_outbox (alert_id, topic, payload, created) SELECT ?, ?, ?, ? "
         "WHERE changes() = 1", (alert_id, topic, payload, created)),
    ]


@dataclass(frozen=True)
class OutboxRow:
    """One pending alert: its id, topic, signed payload bytes, creation time and attempts."""

    alert_id: str
    topic: str
    payload: bytes
    created: float
    attempts: int


class Outbox:
    """The alert outbox tables in the unit's SQLite database (WAL, synchronous=FULL)."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False,
                                       timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # a deleted alert's images are zeroed, not left in free pages
            self._db.executescript(SCHEMA_SQL)
        except sqlite3.Error as exc:
            raise PublishError(f"cannot open the alert outbox {self.db_path}: {exc}",
                               fix="check that the data_dir is writable and the disk is not full") from None

    def _write(self, sql_params: list[tuple[str, tuple]]) -> int:
        """Run statements in one IMMEDIATE transaction; return the first statement's rowcount."""
        return self._write_counts(sql_params)[0]

    def _write_counts(self, sql_params: list[tuple[str, tuple]]) -> list[int]:
        """Run statements in one IMMEDIATE transaction; return every statement's rowcount."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                counts = [self._db.execute(sql, params).rowcount for sql, params in sql_params]
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise PublishError(f"alert outbox write failed: {exc}",
                                   fix="check the disk; alerts are kept until this is fixed") from None
        return counts

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def add(self, alert_id: str, topic: str, payload: bytes, created: float) -> bool:
        """Commit one signed alert; return False (and change nothing) if the id was already issued."""
        return self._write(add_statements(alert_id, topic, payload, created)) == 1

    def due(self, now: float, limit: int, exclude: set[str]) -> list[OutboxRow]:
        """Pending rows whose retry time has come, skipping ids in ``exclude`` (in flight).

        Alerts never acknowledged go first, oldest first; re-sends after a reconnect follow, so
        a fresh alert never waits behind a re-send backlog.
        """
        rows = self._read("SELECT alert_id, topic, payload, created, attempts FROM mqtt_outbox "
                          "WHERE acked IS NULL AND next_attempt <= ? ORDER BY resends > 0, created LIMIT ?",
                          (now, limit + len(exclude)))
        return [OutboxRow(*r) for r in rows if r[0] not in exclude][:limit]

    def attempted(self, alert_ids: list[str]) -> None:
        """Count one hand-over to the MQTT client for each alert id (one transaction)."""
        if alert_ids:
            self._write([("UPDATE mqtt_outbox SET attempts = attempts + 1 WHERE alert_id = ?", (aid,))
                         for aid in alert_ids])

    def delivered(self, alert_ids: list[str], now: float) -> int:
        """The broker acknowledged these alerts: no longer pending (one transaction).

        The rows stay, marked acked, until :meth:`purge_acked`; returns how many were still
        pending (a repeated PUBACK changes nothing).
        """
        if not alert_ids:
            return 0
        statements = []
        for aid in alert_ids:
            statements += [("UPDATE mqtt_outbox SET acked = ? WHERE alert_id = ? AND acked IS NULL", (now, aid)),
                           ("UPDATE mqtt_alert_log SET state = 'delivered', settled = ? WHERE alert_id = ? "
                            "AND state = 'pending'", (now, aid))]
        return self._write_counts(statements)[::2].count(1)

    def purge_acked(self, before: float) -> int:
        """Delete rows (and their images) acknowledged before ``before``; return how many."""
        return self._write([("DELETE FROM mqtt_outbox WHERE acked IS NOT NULL AND acked < ?", (before,))])

    def resend_recent(self, window: float) -> int:
        """After a reconnect: rows acked within ``window`` of the last ack become pending again.

        The broker may have crashed before persisting them. Older acked rows are safe and are
        deleted. Returns how many rows will be sent again.
        """
        return self._write_counts([
            ("UPDATE mqtt_outbox SET acked = NULL, resends = resends + 1 "
             "WHERE acked >= (SELECT MAX(acked) FROM mqtt_outbox) - ?", (window,)),
            ("DELETE FROM mqtt_outbox WHERE acked IS NOT NULL", ()),
        ])[0]

    def refused(self, alert_id: str, error: str, retry_at: float) -> None:
        """The broker refused the alert (e.g. not authorised): keep it, retry no sooner than retry_at."""
        self._write([("UPDATE mqtt_outbox SET last_error = ?, next_attempt = ? WHERE alert_id = ?",
                      (error[:500], retry_at, alert_id))])

    def expire(self, now: float, max_age: float, exclude: set[str], on_expired: ExpiredCallback) -> list[str]:
        """Expire rows older than max_age (not in flight): audit via on_expired first, then mark.

        If on_expired raises, the row stays pending and the error propagates: an alert is
        never expired without its audit entry.
        """
        rows = self._read("SELECT alert_id, topic, payload, created, attempts FROM mqtt_outbox "
                          "WHERE acked IS NULL AND created < ? ORDER BY created", (now - max_age,))
        expired = []
        for row in (OutboxRow(*r) for r in rows if r[0] not in exclude):
            on_expired(row)
            self._write([
                ("DELETE FROM mqtt_outbox WHERE alert_id = ?", (row.alert_id,)),
                ("UPDATE mqtt_alert_log SET state = 'expired', settled = ? WHERE alert_id = ?",
                 (now, row.alert_id)),
            ])
            expired.append(row.alert_id)
        return expired

    def images_due(self, *, created_before: float | None = None, acked_before: float | None = None,
                   deployment_id: str | None = None) -> list[HeldImages]:
        """Rows (with their images) created before ``created_before`` (delivered or not), acknowledged
        before ``acked_before``, or of ``deployment_id``; nothing is changed (the caller audits,
        then calls :meth:`delete_images`)."""
        rows = self._read("SELECT alert_id, payload, created, acked FROM mqtt_outbox ORDER BY created")
        due = []
        for alert_id, payload, created, acked in rows:
            held = held_images(alert_id, payload, created, acked is not None)
            if ((created_before is not None and created < created_before)
                    or (acked_before is not None and acked is not None and acked < acked_before)
                    or (deployment_id is not None and held.deployment_id == deployment_id)):
                due.append(held)
        return due

    def delete_images(self, alert_ids: list[str], now: float) -> int:
        """Delete these rows (undelivered ones become 'expired' in the alert log); return how many.

        The WAL is checkpointed and truncated afterwards, so the deleted pages leave it too.
        """
        if not alert_ids:
            self.truncate_wal()
            return 0
        statements = []
        for aid in alert_ids:
            statements += [("DELETE FROM mqtt_outbox WHERE alert_id = ?", (aid,)),
                           ("UPDATE mqtt_alert_log SET state = 'expired', settled = ? WHERE alert_id = ? "
                            "AND state = 'pending'", (now, aid))]
        deleted = sum(self._write_counts(statements)[::2])
        self.truncate_wal()
        return deleted

    def truncate_wal(self) -> None:
        """Checkpoint the WAL into the database and truncate it: pages of deleted rows (other
        processes' deletions too, e.g. the publisher's after an acknowledgement) leave the WAL file."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def pending_count(self) -> int:
        """Number of alerts not yet acknowledged by the broker."""
        return self._read("SELECT COUNT(*) FROM mqtt_outbox WHERE acked IS NULL")[0][0]

    def state(self, alert_id: str) -> str | None:
        """'pending', 'delivered' or 'expired' for an alert id this unit issued; None otherwise."""
        rows = self._read("SELECT state FROM mqtt_alert_log WHERE alert_id = ?", (alert_id,))
        return rows[0][0] if rows else None

    def counts(self) -> dict[str, int]:
        """Alert ids by state, for status output and tests."""
        rows = self._read("SELECT state, COUNT(*) FROM mqtt_alert_log GROUP BY state")
        return {"pending": 0, "delivered": 0, "expired": 0, **dict(rows)}

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
