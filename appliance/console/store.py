"""The console's state on disk (SQLite, WAL, synchronous=FULL): cards, alerts, outgoing decisions.

An alert is committed here before its MQTT delivery is acknowledged, so nothing the unit sent
is lost to a console restart. Alerts of one subject join the subject's open card (repeat
sightings, no new alarm), and a unit's repeat sighting (``kind`` "repeat_sighting") joins the
card of the alert it names, whatever that card's state; a decision on a card becomes one
signed adjudication per alert on it, committed in the same transaction as the decision and
kept until the broker acknowledges it. Images are sealed by the Vault and forgotten at deployment end and after retention.
"""
from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from .vault import Vault

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY, unit TEXT NOT NULL, deployment_id TEXT NOT NULL, subject_ref TEXT NOT NULL,
    opened REAL NOT NULL, last_seen REAL NOT NULL, sightings INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL CHECK (state IN ('open', 'awaiting_second', 'decided')),
    first_officer TEXT, first_note TEXT, decision TEXT, officer_ids TEXT, note TEXT, decided REAL);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, card_id TEXT NOT NULL REFERENCES cards(card_id), unit TEXT NOT NULL,
    deployment_id TEXT NOT NULL, received REAL NOT NULL, summary TEXT NOT NULL, images BLOB);
CREATE TABLE IF NOT EXISTS outgoing (
    adjudication_id TEXT PRIMARY KEY, unit TEXT NOT NULL, alert_id TEXT NOT NULL, payload BLOB NOT NULL,
    created REAL NOT NULL, sent REAL);
CREATE TABLE IF NOT EXISTS records (
    unit TEXT NOT NULL, deployment_id TEXT NOT NULL, received REAL NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (unit, deployment_id));
CREATE INDEX IF NOT EXISTS alerts_by_card ON alerts(card_id);
"""
SHOWN = ("alert_id", "time", "camera", "deployment_id", "subject_ref", "category", "score", "threshold",
         "model_id", "track_id", "quality")
DECISIONS = ("confirm", "reject", "unable")
MAX_NOTE = 200
Signer = Callable[[str, str, str, list, str], dict]  # (unit, alert_id, decision, officer_ids, note) -> signed


class DecisionRefused(UsageError):
    """A decision the rules do not allow (decided already, same officer twice, ...)."""


class ConsoleStore:
    """Cards, alerts, outgoing adjudications and deployment records in <state_dir>/console.db."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "console.db"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(SCHEMA)
        self.path.chmod(0o600)
        self.vault = Vault(state_dir)
        self._lock = threading.RLock()

    def _tx(self, statements: list[tuple[str, tuple]]) -> list[sqlite3.Cursor]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursors = [self._db.execute(sql, args) for sql, args in statements]
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        return cursors

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- alerts in ---

    def add_alert(self, unit: str, alert: dict, now: float | None = None) -> tuple[str, dict] | None:
        """Commit a verified alert; return ('alert'|'sighting', card) or None for a re-delivery."""
        now = time.time() if now is None else now
        with self._lock:
            if self._rows("SELECT 1 FROM alerts WHERE alert_id = ?", (alert["alert_id"],)):
                return None
            open_card = self._original_card(unit, alert) or self._rows(
                "SELECT card_id FROM cards WHERE unit = ? AND deployment_id = ? AND subject_ref = ? AND "
                "state != 'decided'", (unit, alert["deployment_id"], alert["subject_ref"]))
            card_id = open_card[0][0] if open_card else alert["alert_id"]
            images = (alert["face_jpeg"] + "\n" + alert["reference_jpeg"]).encode("ascii")
            sealed = self.vault.seal(unit, alert["deployment_id"], alert["alert_id"], images)
            card_sql = ("UPDATE cards SET sightings = sightings + 1, last_seen = ? WHERE card_id = ?", (now, card_id)) \
                if open_card else ("INSERT INTO cards (card_id, unit, deployment_id, subject_ref, opened, last_seen, "
                                   "state) VALUES (?, ?, ?, ?, ?, ?, 'open')",
                                   (card_id, unit, alert["deployment_id"], alert["subject_ref"], now, now))
            summary = json.dumps({**{k: alert[k] for k in SHOWN}, "kind": alert.get("kind", "alert")})
            self._tx([card_sql, ("INSERT INTO alerts (alert_id, card_id, unit, deployment_id, received, summary, "
                                 "images) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (alert["alert_id"], card_id, unit, alert["deployment_id"], now, summary, sealed))])
        return ("sighting" if open_card else "alert"), self.card(card_id)

    def _original_card(self, unit: str, alert: dict) -> list[tuple]:
        """The card of the alert a repeat sighting names ([] for an alarm or an unknown original)."""
        if alert.get("kind") != "repeat_sighting":
            return []
        return self._rows("SELECT card_id FROM alerts WHERE alert_id = ? AND unit = ?",
                          (alert["original_alert_id"], unit))

    # --- reading ---

    def card(self, card_id: str) -> dict | None:
        """One card with its latest sighting's shown fields, or None."""
        rows = self._rows("SELECT card_id, unit, deployment_id, subject_ref, opened, last_seen, sightings, state, "
                          "first_officer, first_note, decision, officer_ids, note, decided FROM cards "
                          "WHERE card_id = ?", (card_id,))
        if not rows:
            return None
        keys = ("card_id", "unit", "deployment_id", "subject_ref", "opened", "last_seen", "sightings", "state",
                "first_officer", "first_note", "decision", "officer_ids", "note", "decided")
        card = dict(zip(keys, rows[0]))
        card["officer_ids"] = json.loads(card["officer_ids"]) if card["officer_ids"] else []
        alerts = self._rows("SELECT alert_id, summary, images IS NOT NULL FROM alerts WHERE card_id = ? "
                            "ORDER BY received", (card_id,))
        card["alert_ids"] = [a[0] for a in alerts]
        card["latest"] = json.loads(alerts[-1][1])
        card["repeat_sightings"] = sum(json.loads(a[1]).get("kind") == "repeat_sighting" for a in alerts)
        with_images = [a[0] for a in alerts if a[2]]
        card["image_alert"] = with_images[-1] if with_images else None
        return card

    def cards(self, decided: bool, limit: int = 200) -> list[dict]:
        """Open cards (the queue) or decided ones (history), newest first."""
        op = "=" if decided else "!="
        ids = self._rows(f"SELECT card_id FROM cards WHERE state {op} 'decided' ORDER BY opened DESC LIMIT ?",
                         (limit,))
        return [c for c in (self.card(i[0]) for i in ids) if c]

    def images(self, alert_id: str) -> tuple[bytes, bytes] | None:
        """The face crop and reference thumbnail of one alert (JPEG bytes), None once forgotten."""
        rows = self._rows("SELECT unit, deployment_id, images FROM alerts WHERE alert_id = ?", (alert_id,))
        if not rows or rows[0][2] is None:
            return None
        plain = self.vault.open(rows[0][0], rows[0][1], alert_id, rows[0][2])
        if plain is None:
            return None
        face, reference = plain.decode("ascii").split("\n")
        return base64.b64decode(face), base64.b64decode(reference)

    # --- decisions ---

    def decide(self, card_id: str, officer: str, decision: str, note: str, two_officer: bool,
               sign: Signer, now: float | None = None) -> dict:
        """Apply one officer's decision; return the card. Raises DecisionRefused when not allowed.

        In two-officer mode a confirm needs a second, different officer: the first confirm moves
        the card to 'awaiting_second'. A reject or unable is one officer's decision in both modes.
        """
        now = time.time() if now is None else now
        if decision not in DECISIONS or len(note) > MAX_NOTE:
            raise DecisionRefused(f"decision must be one of {DECISIONS} with a note of at most {MAX_NOTE} characters")
        with self._lock:
            card = self.card(card_id)
            if card is None or card["state"] == "decided":
                raise DecisionRefused("this alert is already decided" if card else "no such alert")
            if decision == "confirm" and two_officer and card["state"] == "open":
                self._tx([("UPDATE cards SET state = 'awaiting_second', first_officer = ?, first_note = ? "
                           "WHERE card_id = ?", (officer, note, card_id))])
                return self.card(card_id)
            officers = [officer]
            if decision == "confirm" and card["state"] == "awaiting_second":
                if officer == card["first_officer"]:
                    raise DecisionRefused("a second, different officer must confirm")
                officers = [card["first_officer"], officer]
                note = "; ".join(n for n in (card["first_note"] or "", note) if n)
                if len(note) > MAX_NOTE:
                    raise DecisionRefused(f"the two notes together exceed {MAX_NOTE} characters")
            self._finish(card, decision, officers, note, sign, now)
        return self.card(card_id)

    def _finish(self, card: dict, decision: str, officers: list, note: str, sign: Signer, now: float) -> None:
        statements = [("UPDATE cards SET state = 'decided', decision = ?, officer_ids = ?, note = ?, decided = ? "
                       "WHERE card_id = ?", (decision, json.dumps(officers), note, now, card["card_id"]))]
        for alert_id in card["alert_ids"]:
            signed = sign(card["unit"], alert_id, decision, officers, note)
            statements.append(("INSERT INTO outgoing (adjudication_id, unit, alert_id, payload, created) "
                               "VALUES (?, ?, ?, ?, ?)", (signed["adjudication_id"], card["unit"], alert_id,
                                                          json.dumps(signed).encode(), now)))
        self._tx(statements)

    def unsent(self) -> list[tuple[str, str, bytes]]:
        """Signed adjudications the broker has not acknowledged: (adjudication_id, unit, payload)."""
        return [(r[0], r[1], bytes(r[2])) for r in
                self._rows("SELECT adjudication_id, unit, payload FROM outgoing WHERE sent IS NULL ORDER BY created")]

    def mark_sent(self, adjudication_id: str, now: float | None = None) -> None:
        """The broker acknowledged this adjudication."""
        self._tx([("UPDATE outgoing SET sent = ? WHERE adjudication_id = ?",
                   (time.time() if now is None else now, adjudication_id))])

    # --- deployment records and forgetting ---

    def add_record(self, unit: str, record: dict, now: float | None = None) -> int:
        """Keep a unit's signed deployment record and forget that deployment's images; return how many."""
        now = time.time() if now is None else now
        self._tx([("INSERT OR REPLACE INTO records (unit, deployment_id, received, payload) VALUES (?, ?, ?, ?)",
                   (unit, record["deployment_id"], now, json.dumps(record)))])
        return self.forget_deployment(unit, record["deployment_id"])

    def records(self) -> list[dict]:
        """Every deployment record held, newest first."""
        return [json.loads(r[0]) for r in self._rows("SELECT payload FROM records ORDER BY received DESC")]

    def record(self, unit: str, deployment_id: str) -> dict | None:
        """One deployment record, or None."""
        rows = self._rows("SELECT payload FROM records WHERE unit = ? AND deployment_id = ?", (unit, deployment_id))
        return json.loads(rows[0][0]) if rows else None

    def forget_deployment(self, unit: str, deployment_id: str) -> int:
        """Deployment ended: shred its image key, drop its sealed images; return how many alerts had them."""
        self.vault.shred(unit, deployment_id)
        cur = self._tx([("UPDATE alerts SET images = NULL WHERE unit = ? AND deployment_id = ? AND images IS NOT NULL",
                         (unit, deployment_id))])[0]
        return cur.rowcount

    def forget_older(self, retention_s: float, now: float | None = None) -> int:
        """Drop the images of alerts received more than ``retention_s`` ago; decided cards that old go whole."""
        cutoff = (time.time() if now is None else now) - retention_s
        cursors = self._tx([
            ("UPDATE alerts SET images = NULL WHERE received < ? AND images IS NOT NULL", (cutoff,)),
            ("DELETE FROM alerts WHERE card_id IN (SELECT card_id FROM cards WHERE state = 'decided' AND "
             "last_seen < ?) AND alert_id NOT IN (SELECT alert_id FROM outgoing WHERE sent IS NULL)", (cutoff,)),
            ("DELETE FROM cards WHERE state = 'decided' AND last_seen < ? AND card_id NOT IN "
             "(SELECT card_id FROM alerts)", (cutoff,)),
            ("DELETE FROM outgoing WHERE sent IS NOT NULL AND sent < ?", (cutoff,)),
        ])
        return cursors[0].rowcount

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
