"""docs/audit.md documents every event type, every field and the verifier's exit codes."""
from __future__ import annotations

import re
from pathlib import Path

from appliance.audit import events, verify

DOC = (Path(__file__).resolve().parents[1] / "docs" / "audit.md").read_text()


def test_every_event_type_and_field_is_documented():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_]+)` \| (\d+) \|.*$", DOC, re.M)}
    assert set(rows) == set(events.SCHEMAS), "docs/audit.md event table differs from events.SCHEMAS"
    for name, schema in events.SCHEMAS.items():
        assert f"| `{name}` | {schema.version} |" in rows[name]
        for field in schema.fields:
            assert f"`{field}`" in rows[name], f"{name}.{field} is not documented"


def test_verify_exit_codes_are_documented():
    for code in (verify.EXIT_OK, verify.EXIT_INTERNAL, verify.EXIT_USAGE, verify.EXIT_UNREADABLE, verify.EXIT_FAILED):
        assert re.search(rf"^\| {code} \| \S", DOC, re.M), f"exit code {code} missing from docs/audit.md"


def test_verify_help_lists_the_documented_exit_codes():
    for code in (verify.EXIT_OK, verify.EXIT_INTERNAL, verify.EXIT_USAGE, verify.EXIT_UNREADABLE, verify.EXIT_FAILED):
        assert f"{code} " in verify.EXIT_TEXT
    from appliance.audit.export_format import MAX_LINE_BYTES
    assert "--partial" in DOC and f"{MAX_LINE_BYTES:,} bytes" in DOC
