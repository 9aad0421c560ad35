"""Officers who may sign in: ids and Argon2id PIN hashes (argon2-cffi), failed attempts, lockout.

Provisioned by a technician (``appliance console officers add|remove|list|unlock``); PINs are
never stored, only memory-hard hashes (RFC 9106 low-memory profile: 64 MiB, 3 passes).
Failed attempts and lockouts are on disk, so restarting the console does not reset them.
"""
from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConfigError, UsageError

OFFICER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # the adjudication schema's officer id
PIN = re.compile(r"^[0-9]{6,12}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS officers (
    officer_id   TEXT PRIMARY KEY,
    pin_hash     TEXT NOT NULL,
    created      REAL NOT NULL,
    failed       INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0
);
"""
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("000000000000")  # unknown ids cost the same time as known ones


@dataclass(frozen=True)
class SignIn:
    """Outcome of one sign-in attempt: 'ok', 'wrong' (id or PIN) or 'locked' (until when)."""

    outcome: str
    locked_until: float = 0.0


class OfficerStore:
    """The officers table in <state_dir>/officers.db."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the officers database {path}: {exc}",
                              fix="check [console] state_dir is writable") from None
        path.chmod(0o600)
        self._lock = threading.Lock()

    def add(self, officer_id: str, pin: str) -> None:
        """Provision an officer with a PIN of 6 to 12 digits; refuse an id that exists."""
        if not OFFICER_ID.match(officer_id or ""):
            raise UsageError(f"officer id {officer_id!r} is not 1-64 of A-Z a-z 0-9 . _ -", fix="use the force number")
        if not PIN.match(pin or ""):
            raise UsageError("a PIN is 6 to 12 digits", fix="choose a longer PIN of digits only")
        try:
            with self._lock:
                self._db.execute("INSERT INTO officers (officer_id, pin_hash, created) VALUES (?, ?, ?)",
                                 (officer_id, _HASHER.hash(pin), time.time()))
        except sqlite3.IntegrityError:
            raise UsageError(f"officer {officer_id} exists", fix="remove it first to set a new PIN") from None

    def remove(self, officer_id: str) -> bool:
        """Remove an officer; False when there was none."""
        with self._lock:
            return self._db.execute("DELETE FROM officers WHERE officer_id = ?", (officer_id,)).rowcount == 1

    def unlock(self, officer_id: str) -> bool:
        """Clear a lockout and the failed-attempt count; False when there is no such officer."""
        with self._lock:
            return self._db.execute("UPDATE officers SET failed = 0, locked_until = 0 WHERE officer_id = ?",
                                    (officer_id,)).rowcount == 1

    def list(self, now: float | None = None) -> list[dict]:
        """Every officer: id, when added, failed attempts, whether locked now."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute("SELECT officer_id, created, failed, locked_until FROM officers "
                                    "ORDER BY officer_id").fetchall()
        return [{"officer_id": r[0], "created": r[1], "failed": r[2], "locked": r[3] > now} for r in rows]

    def sign_in(self, officer_id: str, pin: str, max_failed: int, lockout_s: float,
                now: float | None = None) -> SignIn:
        """Check a PIN (Argon2id); count a failure, lock after ``max_failed`` in a row. Slow by design."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute("SELECT pin_hash, locked_until FROM officers WHERE officer_id = ?",
                                   (officer_id,)).fetchone()
        if row is not None and row[1] > now:
            return SignIn("locked", row[1])  # a right PIN does not unlock early
        right = _matches(row[0] if row else _DUMMY, pin)
        if row is None:
            return SignIn("wrong")
        if not right:
            return self._failed(officer_id, max_failed, lockout_s, now)
        with self._lock:
            self._db.execute("UPDATE officers SET failed = 0 WHERE officer_id = ?", (officer_id,))
        return SignIn("ok")

    def _failed(self, officer_id: str, max_failed: int, lockout_s: float, now: float) -> SignIn:
        with self._lock:
            failed = self._db.execute("UPDATE officers SET failed = failed + 1 WHERE officer_id = ? "
                                      "RETURNING failed", (officer_id,)).fetchone()[0]
            if failed < max_failed:
                return SignIn("wrong")
            self._db.execute("UPDATE officers SET failed = 0, locked_until = ? WHERE officer_id = ?",
                             (now + lockout_s, officer_id))
        return SignIn("locked", now + lockout_s)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _matches(pin_hash: str, pin: str) -> bool:
    try:
        return _HASHER.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False
