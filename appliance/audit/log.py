"""The unit's append-only audit log: SQLite (WAL, synchronous=FULL), Merkle tree, signed heads.

Library API (what the pipeline calls)::

    log = AuditLog.open(db_path, signing_key, unit_id="van-01",
                        head_every_n=1000, head_every_s=60.0)
    seq = log.append("alert", {...})   # returns only after COMMIT (fsync'd WAL)
    log.tick()                         # call now and then: signs a head when T seconds passed
    log.status()                       # {"state": "ok" | "full" | "io_error" | ..., "reason", "fix", ...}
    log.close()                        # signs a final head ("shutdown") and closes

- ``append`` validates the payload against its versioned schema (events.py), so a
  non-match biometric cannot be stored; a schema violation raises AuditSchemaError.
- Any write failure (disk full, I/O error, read-only, locked) rolls the transaction
  back and raises :class:`~appliance.errors.AuditError`; ``status()`` then says why
  ("full" for SQLITE_FULL). The caller must stop matching: fail closed. Nothing
  committed is ever lost or rewritten; a later ``append`` may be tried again.
- A head is signed in the same transaction as the entry that makes it due (every N
  entries), by ``tick``/``append`` after T seconds, at open after a crash left
  entries uncovered, and by ``close``. Every head links the previous head's digest.
- Thread-safe (one lock); several processes may share the file (an export signs a
  head while the service appends): each write re-reads the tip inside
  ``BEGIN IMMEDIATE``.
- Counter events are aggregated by the caller (one ``counters`` event per period).
"""
from __future__ import annotations

import base64
from contextlib import contextmanager
import sqlite3
import threading
import time as _time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlite_utils import Database

from ..clock import utc_text
from ..errors import AuditError
from . import events, heads
from .merkle import CompactRange, leaf_hash
from .schema import migrate

_FAILURES = {  # SQLite primary result code -> (state, what it means, fix)
    13: ("full", "the audit log is full: no space left on the disk holding {db}",
         "free space on the data partition (or move [audit] db); matching stays stopped until then"),
    10: ("io_error", "the audit log cannot be written: I/O error on {db}",
         "check the storage device (dmesg); replace it if failing"),
    8: ("read_only", "the audit log is read-only: {db}",
        "remount the data partition read-write and check file ownership"),
    5: ("busy", "the audit log is locked by another process: {db}",
        "stop the other writer (only the service and `audit export` write)"),
    11: ("corrupt", "the audit log database is corrupt: {db}",
         "keep the file for the auditors; provision a new log"),
}


class AuditSchemaError(AuditError):
    """An event does not match its schema; it was not written."""


def connect(db_path: Path, readonly: bool = False) -> Database:
    """Open the SQLite file with WAL and synchronous=FULL (read-only when asked)."""
    db_path = Path(db_path)
    if readonly:
        if not db_path.exists():
            raise AuditError(f"no audit log at {db_path}", fix="check [audit] db and [unit] data_dir")
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False, timeout=30)
    else:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return Database(conn)


def load_heads(db: Database, start_no: int = 0) -> list[heads.TreeHead]:
    """Every stored tree head from head number ``start_no``, in order."""
    rows = db.execute("SELECT body, signature FROM heads WHERE head_no >= ? ORDER BY head_no",
                      [start_no]).fetchall()
    return [heads.TreeHead(bytes(body), bytes(sig)) for body, sig in rows]


def iter_entries(db: Database, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
    """(seq, entry bytes, leaf hash) for lo <= seq < hi, in order."""
    hi = (1 << 62) if hi is None else hi
    cur = db.execute("SELECT seq, body, leaf_hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                     [lo, hi])
    while rows := cur.fetchmany(10000):
        for seq, body, leaf in rows:
            yield seq, bytes(body), bytes(leaf)


def read_meta(db: Database) -> dict:
    """The log's identity: log id, unit, public key, creation time."""
    return dict(db.execute("SELECT key, value FROM meta").fetchall())


class AuditLog:
    """An open, writable audit log (see the module docstring for the contract)."""

    def __init__(self, db: Database, db_path: Path, key: Ed25519PrivateKey, unit_id: str,
                 head_every_n: int, head_every_s: float, clock: Callable[[], float]) -> None:
        self._db, self._conn, self.db_path = db, db.conn, Path(db_path)
        self._key, self.unit_id = key, unit_id
        self.log_id = heads.log_id(key.public_key())
        self.head_every_n, self.head_every_s, self._clock = head_every_n, head_every_s, clock
        self._lock = threading.RLock()
        self._tree = CompactRange()
        self._last_head: dict | None = None
        self._last_head_at = clock()
        self._state, self._reason, self._fix = "ok", "", ""
        self._closed = False

    @classmethod
    def open(cls, db_path: str | Path, signing_key: Ed25519PrivateKey, unit_id: str,
             head_every_n: int = 1000, head_every_s: float = 60.0,
             clock: Callable[[], float] = _time.monotonic, recover: bool = True) -> "AuditLog":
        """Open (creating and migrating if needed) the log at ``db_path``; raise AuditError.

        With ``recover`` a head ("recovery") is signed over entries a crash left uncovered.
        """
        try:
            db = connect(Path(db_path))
            migrate(db)
        except sqlite3.Error as exc:
            raise _error(exc, Path(db_path)) from None
        log = cls(db, Path(db_path), signing_key, unit_id, head_every_n, head_every_s, clock)
        try:
            log._start(recover)
        except sqlite3.Error as exc:
            db.conn.close()
            raise _error(exc, Path(db_path)) from None
        except AuditError:
            db.conn.close()
            raise
        return log

    # --- opening -------------------------------------------------------------

    def _start(self, recover: bool) -> None:
        meta = read_meta(self._db)
        if meta and meta.get("log_id") != self.log_id:
            raise AuditError(f"{self.db_path} belongs to log {meta.get('log_id')} (another unit key), "
                             f"not {self.log_id}", fix="use this unit's own key store or data_dir")
        if meta and meta.get("unit") != self.unit_id:
            raise AuditError(f"{self.db_path} is the log of unit {meta.get('unit')}, not {self.unit_id}",
                             fix="restore [unit] id, or give the renamed unit a new [audit] db")
        with self._lock:
            self._load()
            if not meta:
                self._create()
            elif recover and self._tree.size > self._last_head["tree_size"]:
                self.sign_head("recovery")

    def _create(self) -> None:
        public = self._key.public_key()
        self._write(lambda seq: ("log_created", {
            "public_key": base64.b64encode(heads.public_raw(public)).decode(),
            "key_fingerprint": heads.fingerprint(public)}), reason="created", meta={
            "log_id": self.log_id, "unit": self.unit_id, "created": utc_text(),
            "public_key": base64.b64encode(heads.public_raw(public)).decode()})

    def _load(self) -> None:
        """Read every entry once at open: each must match its leaf hash, the last head its root."""
        stored = load_heads(self._db)
        last = stored[-1].fields if stored else None
        root_at_head = None
        for seq, body, leaf in iter_entries(self._db):
            self._take(seq, body, leaf)
            if last and self._tree.size == last["tree_size"]:
                root_at_head = self._tree.root()
        if last is None:
            return
        if root_at_head != heads.root_of(last):
            raise AuditError(f"{self.db_path}: stored entries do not match signed head #{last['head_no']} "
                             f"({last['tree_size']} entries; {self._tree.size} stored)",
                             fix="the database was altered or damaged: keep it for the auditors")
        self._last_head = last | {"digest": stored[-1].digest()}

    def _take(self, seq: int, body: bytes, leaf: bytes) -> None:
        if seq != self._tree.size or leaf_hash(body) != leaf:
            raise AuditError(f"{self.db_path}: entry seq {seq} was altered or an entry before it removed",
                             fix="the database was altered or damaged: keep it for the auditors")
        self._tree.append(leaf)

    def _catch_up(self) -> None:
        """Bring the in-memory frontier up to the disk (another process may have written)."""
        for seq, body, leaf in iter_entries(self._db, self._tree.size):
            self._take(seq, body, leaf)
        stored = load_heads(self._db, self._last_head["head_no"] + 1 if self._last_head else 0)
        if stored:
            self._last_head = stored[-1].fields | {"digest": stored[-1].digest()}

    # --- writing -------------------------------------------------------------

    def append(self, event_type: str, payload: dict, also: Sequence[tuple[str, tuple]] = ()) -> int:
        """Commit one event and return its seq; raise AuditError when it cannot be committed.

        ``also``: SQL statements (with parameters) on other tables of the same database,
        committed in the entry's transaction or not at all (the alert outbox row that
        carries the alert to the van: an audited alert is never left undelivered).
        """
        try:
            events.validate_payload(event_type, payload)
        except events.EventError as exc:
            raise AuditSchemaError(f"audit event refused: {exc}",
                                   fix="log only the fields in docs/audit.md") from None
        return self._write(lambda seq: (event_type, payload), reason="entries", also=also)

    def tick(self) -> heads.TreeHead | None:
        """Sign a head if entries are uncovered and head_every_s seconds have passed."""
        with self._lock:
            if self._uncovered() and self._clock() - self._last_head_at >= self.head_every_s:
                return self.sign_head("interval")
        return None

    def sign_head(self, reason: str) -> heads.TreeHead:
        """Sign and store a head over every committed entry now; raise AuditError on failure."""
        with self._lock:
            self._require_open()
            with self._transaction():
                head = self._insert_head(self._tree, reason)
            self._after_head(head)
            return head

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE (re-reading the tip) ... COMMIT; any failure rolls back as AuditError."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._catch_up()
            yield
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail(exc) from None
        except AuditError:
            self._rollback()
            raise

    def _write(self, make: Callable[[int], tuple[str, dict]], reason: str, meta: dict | None = None,
               also: Sequence[tuple[str, tuple]] = ()) -> int:
        with self._lock:
            self._require_open()
            with self._transaction():
                seq = self._tree.size
                event_type, payload = make(seq)
                now = utc_text()
                body = events.encode_entry(seq, self.log_id, self.unit_id, now, event_type, payload)
                leaf = leaf_hash(body)
                self._conn.execute("INSERT INTO entries (seq, time, type, body, leaf_hash) VALUES (?,?,?,?,?)",
                                   (seq, now, event_type, body, leaf))
                if meta:
                    self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                for sql, params in also:
                    self._conn.execute(sql, params)
                tree = self._tree.copy()
                tree.append(leaf)
                due = self._head_due(tree.size, reason)
                head = self._insert_head(tree, due) if due else None
            self._tree = tree
            self._state, self._reason, self._fix = "ok", "", ""
            if head is not None:
                self._after_head(head)
            return seq

    def _head_due(self, size: int, reason: str) -> str | None:
        """Why a head is due after this entry ("entries", "interval", "created"), or None."""
        covered = self._last_head["tree_size"] if self._last_head else 0
        if self._last_head is None or size - covered >= self.head_every_n:
            return reason
        return "interval" if self._clock() - self._last_head_at >= self.head_every_s else None

    def _insert_head(self, tree: CompactRange, reason: str) -> heads.TreeHead:
        last = self._last_head
        head = heads.sign_head(self._key, unit=self.unit_id, head_no=last["head_no"] + 1 if last else 0,
                               tree_size=tree.size, root=tree.root(), time=utc_text(),
                               prev=last["digest"] if last else "", reason=reason)
        fields = head.fields
        self._conn.execute("INSERT INTO heads (head_no, tree_size, time, body, signature) VALUES (?,?,?,?,?)",
                           (fields["head_no"], fields["tree_size"], fields["time"], head.body, head.signature))
        return head

    def _after_head(self, head: heads.TreeHead) -> None:
        self._last_head = head.fields | {"digest": head.digest()}
        self._last_head_at = self._clock()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # a failed ROLLBACK means SQLite already rolled back; the original error is reported

    def _fail(self, exc: sqlite3.Error) -> AuditError:
        self._rollback()
        # In-memory state changes only after COMMIT, so it still matches the disk.
        err = _error(exc, self.db_path)
        self._state, self._reason, self._fix = _state_of(exc), err.message, err.fix
        return err

    def _uncovered(self) -> int:
        return self._tree.size - (self._last_head["tree_size"] if self._last_head else 0)

    def _require_open(self) -> None:
        if self._closed:
            raise AuditError(f"audit log {self.db_path} is closed", fix="open it again")

    # --- closing and status ----------------------------------------------------

    def close(self, final_head: str | None = "shutdown") -> None:
        """Sign a final head (reason ``final_head``; None for none) and close.

        The connection is closed even when signing fails (the AuditError still propagates).
        """
        with self._lock:
            if self._closed:
                return
            try:
                if final_head:
                    self.sign_head(final_head)
            finally:
                self._closed = True
                self._conn.close()

    def status(self) -> dict:
        """State for the unit's status: ok / full / io_error / ..., why, the fix, sizes."""
        with self._lock:
            last = self._last_head or {}
            return {"state": "closed" if self._closed else self._state, "reason": self._reason,
                    "fix": self._fix, "db": str(self.db_path), "log_id": self.log_id,
                    "entries": self._tree.size, "uncovered": self._uncovered(),
                    "last_head": {k: last.get(k) for k in ("head_no", "tree_size", "time")}}


def _state_of(exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorcode", None)
    return _FAILURES.get((code or 0) & 0xFF, ("failed",))[0]


def _error(exc: sqlite3.Error, db_path: Path) -> AuditError:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    _state, message, fix = _FAILURES.get(code, ("failed", "the audit log cannot be written: {db}",
                                              "check the data partition and the log file"))
    return AuditError(f"{message.format(db=db_path)} (SQLite: {exc})", fix=fix)
