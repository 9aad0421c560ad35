"""Property: a mutated genuine export is refused, or it yields the report of a prefix of the genuine one.

Mutations: delete, insert (a genuine line, a line of another unit's export, a forged
entry, an end line with fixed counts), reorder, truncate, append, edit a header field
(random values and a careful forger's consistent values). The entries the report counts
come from `audit report --export`'s own path (``entries_from_export``).
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from appliance.audit import events
from appliance.audit.export import export_log
from appliance.audit.report import build_report, entries_from_db, entries_from_export
from appliance.audit.verify import load_head_file
from appliance.audit.verify_checks import ExportFormatError
from appliance.errors import AuditError
from tests.audit_helpers import DEP, adjudication_payload, deployment_log, exported, new_key, read_lines

HEADER_FIELDS = ["format", "version", "tool", "exported_at", "unit", "log_id", "public_key", "key_fingerprint",
                 "first_seq", "entry_count", "final_head_no", "since", "until", "previous_head",
                 "previous_consistency"]


class Genuine:
    """One unit's genuine exports (a full one and an incremental one) and the entries behind them."""

    def __init__(self, tmp) -> None:
        self.key, self.tmp = new_key(), tmp
        db = tmp / "u.db"
        deployment_log(db, self.key, alerts=6, decisions=("rejected", "confirmed"), head_every_n=5)
        export_log(db, tmp / "first.jsonl")
        deployment_log(db, self.key, alerts=4, decisions=("rejected",), head_every_n=5)
        export_log(db, tmp / "full.jsonl")
        export_log(db, tmp / "increment.jsonl", previous_head=tmp / "first.jsonl")
        self.previous = load_head_file(tmp / "first.jsonl")
        self.entries, _head = entries_from_db(db)
        self.lines = {"full": read_lines(tmp / "full.jsonl"), "increment": read_lines(tmp / "increment.jsonl")}
        self.pool = self.lines["full"] + read_lines(exported(tmp, new_key(), n=12, name="other")) + self._forged()

    def _forged(self) -> list[str]:
        first = json.loads(json.loads(self.lines["full"][-2])["entry"])
        out = []
        for seq in (first["seq"] + 1, 3):
            body = events.encode_entry(seq, first["log"], first["unit"], first["time"], "adjudication",
                                       adjudication_payload(0, "confirmed"))
            out.append(json.dumps({"entry": body.decode(), "proof": []}))
        return out

    def expected(self, which: str) -> list[dict]:
        """The entries the genuine export holds, in order."""
        start = self.previous.fields["tree_size"] if which == "increment" else 0
        return self.entries[start:]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    return Genuine(tmp_path_factory.mktemp("genuine"))


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 80), st.integers(10 ** 17, 10 ** 19),
                    st.text(max_size=12), st.just("2026-11-28T09:00:00Z"), st.just("2099-01-01T00:00:00Z"),
                    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                             max_size=2))
_index = st.integers(0, 10 ** 6)
_ops = st.one_of(
    st.tuples(st.just("delete"), _index),
    st.tuples(st.just("insert"), _index, _index),
    st.tuples(st.just("swap"), _index, _index),
    st.tuples(st.just("truncate"), _index),
    st.tuples(st.just("append"), _index),
    st.tuples(st.just("header"), st.sampled_from(HEADER_FIELDS), _values),
    st.tuples(st.just("careful"), st.booleans()),
)


def _careful(lines: list[str], since: bool) -> list[str]:
    """What a careful forger does after cutting: make the header and end line agree with the body."""
    seqs = [json.loads(json.loads(line)["entry"]).get("seq", -1) for line in lines[1:]
            if line.startswith('{"entry"') and _is_json(json.loads(line)["entry"])]
    head_lines = sum(1 for line in lines[1:] if line.startswith('{"head"'))
    try:
        header = json.loads(lines[0])
        header.update(first_seq=min(seqs, default=0), entry_count=len(seqs))
        if since:
            header["since"] = "2000-01-01T00:00:00Z"
        lines = [json.dumps(header), *lines[1:]]
    except (ValueError, IndexError, AttributeError, TypeError):
        pass
    end = json.dumps({"end": {"entries": len(seqs), "heads": head_lines}})
    return [*[line for line in lines if not line.startswith('{"end"')], end]


def _is_json(text: object) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (TypeError, ValueError):
        return False


def mutate(lines: list[str], ops: list[tuple], pool: list[str]) -> list[str]:
    """Apply the operations in order (indices taken modulo the current length)."""
    lines = list(lines)
    for op in ops:
        n = max(len(lines), 1)
        kind = op[0]
        if kind == "delete" and lines:
            del lines[op[1] % n]
        elif kind == "insert":
            lines.insert(op[1] % (n + 1), pool[op[2] % len(pool)])
        elif kind == "swap" and lines:
            a, b = op[1] % n, op[2] % n
            lines[a], lines[b] = lines[b], lines[a]
        elif kind == "truncate":
            lines = lines[:op[1] % n]
        elif kind == "append":
            lines.append(pool[op[1] % len(pool)])
        elif kind == "header" and lines:
            header = json.loads(lines[0]) if _is_json(lines[0]) else {}
            header[op[1]] = op[2]
            lines[0] = json.dumps(header)
        elif kind == "careful":
            lines = _careful(lines, op[1])
    return lines


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["full", "increment"]), ops=st.lists(_ops, min_size=1, max_size=4))
def test_a_mutated_export_is_refused_or_reports_a_genuine_prefix(genuine, tmp_path, which, ops):
    lines = mutate(genuine.lines[which], ops, genuine.pool)
    path = tmp_path / "mutated.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogatepass")
    anchor = (genuine.previous,) if which == "increment" else ()
    try:
        entries, _head = entries_from_export(path, genuine.key.public_key(), *anchor)
    except AuditError as exc:
        event("refused: " + ("unreadable" if "not a readable" in exc.message else "does not verify"))
        return
    event(f"verified {which}, {'all' if len(entries) == len(genuine.expected(which)) else 'fewer'} entries")
    expected = genuine.expected(which)
    assert entries == expected[:len(entries)], ops
    assert build_report(entries) == build_report(expected[:len(entries)]), ops
    assert build_report(entries, DEP) == build_report(expected[:len(entries)], DEP), ops


def test_the_genuine_exports_themselves_verify(genuine, tmp_path):
    """The control: unmutated, both exports verify and report exactly the log's entries."""
    for which, previous in (("full", None), ("increment", genuine.previous)):
        path = tmp_path / f"{which}.jsonl"
        path.write_text("\n".join(genuine.lines[which]) + "\n")
        entries, _head = entries_from_export(path, genuine.key.public_key(), previous)
        assert entries == genuine.expected(which) and entries


def test_the_mutations_reach_the_verifier(genuine, tmp_path):
    """Not every mutation is refused before verification: some verify (harmless ones), some fail checks."""
    harmless = mutate(genuine.lines["full"], [("header", "exported_at", "2099-01-01T00:00:00Z")], genuine.pool)
    path = tmp_path / "harmless.jsonl"
    path.write_text("\n".join(harmless) + "\n")
    entries, _head = entries_from_export(path, genuine.key.public_key())
    assert entries == genuine.expected("full")
    cut = mutate(genuine.lines["full"], [("delete", 20), ("careful", True)], genuine.pool)
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises((AuditError, ExportFormatError)):
        entries_from_export(path, genuine.key.public_key())
