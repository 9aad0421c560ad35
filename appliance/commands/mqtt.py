"""`appliance mqtt`: write the payload JSON Schemas, show the alert outbox."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Config, load_config, resolve
from ..errors import UsageError
from ..mqtt.outbox import Outbox
from ..mqtt.publisher import OUTBOX_FILE
from ..mqtt.schemas import write_schema_files


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write docs/schemas/<kind>.json from the schemas the unit enforces."""
    for path in write_schema_files(Path(args.out)):
        print(f"wrote {path}")
    return 0


def outbox_summary(db_path: Path) -> dict:
    """Alert ids by state (pending, delivered, expired) and the pending count of an outbox."""
    if not db_path.is_file():
        raise UsageError(f"no alert outbox at {db_path}",
                         fix="pass --db, or --config with the unit's [unit] data_dir")
    box = Outbox(db_path)
    try:
        return {"db": str(db_path), "pending_rows": box.pending_count(), "alerts": box.counts()}
    finally:
        box.close()


def cmd_outbox(args: argparse.Namespace) -> int:
    """Print the outbox summary as JSON."""
    cfg = load_config(args.config) if args.config else Config()
    db = Path(args.db) if args.db else resolve(cfg.unit.data_dir) / OUTBOX_FILE
    print(json.dumps(outbox_summary(db), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the mqtt commands."""
    p = sub.add_parser("mqtt", help="MQTT payload schemas and the alert outbox")
    msub = p.add_subparsers(dest="mqtt_command", metavar="ACTION", required=True)
    q = msub.add_parser("schemas", help="write the payload JSON Schemas (docs/schemas)")
    q.add_argument("--out", default="docs/schemas")
    q.set_defaults(func=cmd_schemas)
    q = msub.add_parser("outbox", help="show pending, delivered and expired alerts")
    q.add_argument("--config", help=f"appliance TOML (its data_dir holds {OUTBOX_FILE})")
    q.add_argument("--db", help="path of the SQLite database (overrides --config)")
    q.set_defaults(func=cmd_outbox)
