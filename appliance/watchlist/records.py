"""Deployment records in the unit's SQLite database (<data_dir>/appliance.db).

A record holds what the unit needs to find, check and later purge a deployment:
ids, window, hashes, the path of the unit's encrypted copy and the name of its
per-deployment key. Never an entry, an embedding or a thumbnail. The same table
gives the anti-rollback rule: a bundle is accepted only when its version is
above every version accepted before for the same deployment id.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import WatchlistError

DB_NAME = "appliance.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS watchlist_deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    bundle_version INTEGER NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    copy_path TEXT NOT NULL,
    key_name TEXT NOT NULL,
    location TEXT NOT NULL,
    authorising_officer TEXT NOT NULL,
    model_id TEXT NOT NULL,
    entry_count INTEGER NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    end_reason TEXT,
    active INTEGER UNIQUE CHECK (active IS NULL OR active = 1),
    UNIQUE (deployment_id, bundle_version)
);
"""
COLUMNS = ("id", "deployment_id", "bundle_version", "bundle_sha256", "copy_path", "key_name", "location",
           "authorising_officer", "model_id", "entry_count", "not_before", "not_after", "started_at",
           "ended_at", "end_reason")


@dataclass(frozen=True)
class DeploymentRecord:
    """One row: a deployment that was started on this unit."""

    id: int
    deployment_id: str
    bundle_version: int
    bundle_sha256: str
    copy_path: str
    key_name: str
    location: str
    authorising_officer: str
    model_id: str
    entry_count: int
    not_before: str
    not_after: str
    started_at: str
    ended_at: str | None
    end_reason: str | None

    def public(self) -> dict:
        """The record as a dict for status output and audit events."""
        return {name: getattr(self, name) for name in COLUMNS if name != "copy_path"}


class DeploymentRecords:
    """The deployment table; one short connection per call, so several processes can share it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._initialise()

    def _initialise(self, attempts: int = 100) -> None:
        """Switch the file to WAL (persistent) and create the table.

        Two processes opening a new file at once can see "database is locked" from the
        journal-mode switch, which SQLite does not retry through the busy timeout.
        """
        for attempt in range(attempts):
            try:
                with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
                    db.execute("PRAGMA journal_mode=WAL")
                with self._connect() as db:
                    db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success, rolls back on error, and is always closed."""
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with db:
                yield db
        finally:
            db.close()

    def _select(self, where: str, args: tuple = ()) -> list[DeploymentRecord]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM watchlist_deployments {where}", args)
            return [DeploymentRecord(*row) for row in rows.fetchall()]

    def active(self) -> DeploymentRecord | None:
        """The active deployment, if any."""
        rows = self._select("WHERE active = 1")
        return rows[0] if rows else None

    def highest_version(self, deployment_id: str) -> int:
        """Highest bundle version ever accepted for ``deployment_id`` (0 when none)."""
        with self._connect() as db:
            row = db.execute("SELECT MAX(bundle_version) FROM watchlist_deployments WHERE deployment_id = ?",
                             (deployment_id,)).fetchone()
        return int(row[0] or 0)

    def insert_active(self, fields: dict) -> DeploymentRecord:
        """Record a started deployment; the UNIQUE(active) column refuses a second active one."""
        names = [c for c in COLUMNS if c not in ("id", "ended_at", "end_reason")]
        try:
            with self._connect() as db:
                cur = db.execute(
                    f"INSERT INTO watchlist_deployments ({', '.join(names)}, active) "
                    f"VALUES ({', '.join('?' for _ in names)}, 1)", tuple(fields[n] for n in names))
                row_id = cur.lastrowid
        except sqlite3.IntegrityError:
            raise WatchlistError("another deployment became active, or this bundle version was used, "
                                 "while this one was being started", fix="check `appliance deployment status`") from None
        return self._select("WHERE id = ?", (row_id,))[0]

    def mark_ended(self, row_id: int, ended_at: str, reason: str) -> bool:
        """End the record; True only for the caller that actually ended it (others see False)."""
        with self._connect() as db:
            cur = db.execute("UPDATE watchlist_deployments SET ended_at = ?, end_reason = ?, active = NULL "
                             "WHERE id = ? AND active = 1", (ended_at, reason, row_id))
            return cur.rowcount == 1

    def get(self, row_id: int) -> DeploymentRecord | None:
        """The record with this row id."""
        rows = self._select("WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    def ended(self) -> list[DeploymentRecord]:
        """Every ended deployment (the purge sweep checks their files are gone)."""
        return self._select("WHERE active IS NULL ORDER BY id")
