"""Schema migrations of the audit database, applied in order with sqlite-utils.

``PRAGMA user_version`` holds the number of migrations applied; each migration
runs in its own transaction with the version bump, so a crash mid-migration
leaves the previous version intact. Append new steps; never edit old ones.
"""
from __future__ import annotations

from typing import Callable

from sqlite_utils import Database


def _v1_tables(db: Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["entries"].create({"seq": int, "time": str, "type": str, "body": bytes, "leaf_hash": bytes},
                         pk="seq", not_null={"time", "type", "body", "leaf_hash"})
    db["heads"].create({"head_no": int, "tree_size": int, "time": str, "body": bytes,
                        "signature": bytes},
                       pk="head_no", not_null={"tree_size", "time", "body", "signature"})


def _v2_indexes(db: Database) -> None:
    db["entries"].create_index(["time"])
    db["entries"].create_index(["type"])
    db["heads"].create_index(["tree_size"])


def _v3_append_only(db: Database) -> None:
    """The database itself refuses to update or delete entries and heads."""
    for table in ("entries", "heads", "meta"):
        for action in ("UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


MIGRATIONS: list[Callable[[Database], None]] = [_v1_tables, _v2_indexes, _v3_append_only]


def version(db: Database) -> int:
    """Number of migrations applied to ``db``."""
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Database, upto: int | None = None) -> int:
    """Apply the pending migrations (up to ``upto``); return the resulting version."""
    target = len(MIGRATIONS) if upto is None else upto
    while (current := version(db)) < target:
        with db.atomic():
            MIGRATIONS[current](db)
            db.execute(f"PRAGMA user_version = {current + 1}")
    return version(db)
