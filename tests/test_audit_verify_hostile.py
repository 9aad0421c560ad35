"""A hostile export: every case is refused with a documented exit code and no traceback.

Each case runs through both auditor entry points, `appliance audit verify` (the one CLI)
and `python -m appliance.audit.verify` (Python and cryptography only), as subprocesses,
so a hang (a FIFO) or a traceback would show. Exit codes: 4 unreadable, 10 failed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.audit import events
from appliance.audit.export import export_log
from appliance.audit.report import build_report, entries_from_export
from appliance.audit.verify import EXIT_FAILED, EXIT_OK, EXIT_UNREADABLE
from appliance.errors import AuditError
from tests.audit_helpers import (adjudication_payload, deployment_log, entry_index, exported, head_index,
                                 new_key, read_lines, write_lines)

ENTRY_POINTS = {"cli": ["-m", "appliance", "audit", "verify"], "standalone": ["-m", "appliance.audit.verify"]}


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """A unit whose deployment raised 14 alerts, none adjudicated: 0% verified."""
    tmp = tmp_path_factory.mktemp("hostile")
    key = new_key()
    deployment_log(tmp / "u.db", key, alerts=14)
    export_log(tmp / "u.db", tmp / "genuine.jsonl")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    return key, raw, tmp / "genuine.jsonl"


def verify_both(path, *args, timeout: float = 20) -> list[subprocess.CompletedProcess]:
    """Run the case through both entry points; neither may print a traceback."""
    results = []
    for form in ENTRY_POINTS.values():
        proc = subprocess.run([sys.executable, *form, str(path), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout)
        assert "Traceback" not in proc.stderr, proc.stderr
        results.append(proc)
    return results


def assert_both(path, code: int, text: str, *args) -> None:
    for proc in verify_both(path, *args):
        assert proc.returncode == code, (proc.args, proc.returncode, proc.stdout, proc.stderr)
        assert text in proc.stdout + proc.stderr, (proc.args, proc.stdout, proc.stderr)


def _forged_confirmations(lines: list[str], count: int) -> list[str]:
    """Entries that decode as valid adjudications of this log (right log id, unit, seq), unsigned."""
    first = json.loads(json.loads(lines[entry_index(lines, 0)])["entry"])
    size = sum(1 for line in lines if line.startswith('{"entry"'))
    out = []
    for n in range(count):
        body = events.encode_entry(size + n, first["log"], first["unit"], "2026-11-28T10:00:00Z", "adjudication",
                                   adjudication_payload(n, "confirmed"))
        out.append(json.dumps({"entry": body.decode(), "proof": []}))
    return out


def test_lines_after_the_end_line_are_refused_and_not_counted(unit, tmp_path):
    key, raw, genuine = unit
    lines = read_lines(genuine)
    forged = write_lines(tmp_path / "appended.jsonl", lines + _forged_confirmations(lines, 14))
    assert_both(forged, EXIT_FAILED, "14 line(s) follow the end line", "--unit-key", raw)
    with pytest.raises(AuditError, match="does not verify"):
        entries_from_export(forged, key.public_key())
    report = subprocess.run([sys.executable, "-m", "appliance", "audit", "report", "--export", str(forged),
                             "--unit-key", raw, "--json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 10 and "follow the end line" in report.stderr, report.stdout + report.stderr
    entries, _head = entries_from_export(genuine, key.public_key())
    assert build_report(entries)["verified_alert_rate"] == 0.0


def test_entries_removed_from_the_middle_under_an_edited_first_seq(unit, tmp_path):
    """The reviewer's forgery: three alerts deleted, first_seq moved past them, counts fixed."""
    _key, raw, genuine = unit
    lines = read_lines(genuine)
    header = json.loads(lines[0])
    header.update(first_seq=8, entry_count=header["entry_count"] - 8)
    lines[0] = json.dumps(header)
    for seq in (7, 6, 5):
        del lines[entry_index(lines, seq)]
    count = sum(1 for line in lines if line.startswith('{"entry"'))
    lines[-1] = json.dumps({"end": {"entries": count, "heads": json.loads(lines[-1])["end"]["heads"]}})
    path = write_lines(tmp_path / "middle.jsonl", lines)
    for proc in verify_both(path, "--unit-key", raw):
        assert proc.returncode == EXIT_FAILED, proc.stdout
        assert "entries seq 5..7: missing (deleted)" in proc.stdout
        assert "entries seq 0..4: lies before seq 8" in proc.stdout


def test_a_cut_front_made_to_look_like_a_since_export_needs_an_anchor(unit, tmp_path):
    """Entries and heads cut from the front, since set: only the auditor's previous head or --partial accepts it."""
    _key, raw, genuine = unit
    lines = read_lines(genuine)
    cut = 9
    keep_heads = [i for i in range(1, len(lines)) if '"head"' in lines[i][:8]
                  and json.loads(json.loads(lines[i])["head"]["body"])["tree_size"] >= 6]
    header = json.loads(lines[0])
    entry_time = json.loads(json.loads(lines[entry_index(lines, cut)])["entry"])["time"]
    header.update(first_seq=cut, entry_count=header["entry_count"] - cut, since=entry_time)
    body = [lines[i] for i in keep_heads] + lines[entry_index(lines, cut):-1]
    count = sum(1 for line in body if line.startswith('{"entry"'))
    path = write_lines(tmp_path / "front.jsonl", [json.dumps(header), *body,
                                                  json.dumps({"end": {"entries": count, "heads": len(keep_heads)}})])
    assert_both(path, EXIT_FAILED, "no head you hold shows that none were left out", "--unit-key", raw)
    assert_both(path, EXIT_OK, "accepted with --partial", "--unit-key", raw, "--partial")


def _edit_line(lines: list[str], index: int, change) -> list[str]:
    obj = json.loads(lines[index])
    change(obj)
    return lines[:index] + [json.dumps(obj)] + lines[index + 1:]


def _header_set(**values):
    return lambda lines: _edit_line(lines, 0, lambda h: h.update(values))


def _entry_set(seq: int, **values):
    return lambda lines: _edit_line(lines, entry_index(lines, seq), lambda o: o.update(values))


def _raw_line(index, text: str):
    return lambda lines: lines[:index] + [text] + lines[index + 1:]


def _entry_raw(seq: int, text: str):
    return lambda lines: _raw_line(entry_index(lines, seq), text)(lines)


def _inner_entry(seq: int, text_of):
    """Replace the entry text of ``seq`` by ``text_of(entry text)``."""
    def change(lines):
        i = entry_index(lines, seq)
        obj = json.loads(lines[i])
        return lines[:i] + ['{"entry": ' + json.dumps(text_of(obj["entry"])) + ', "proof": '
                            + json.dumps(obj["proof"]) + "}"] + lines[i + 1:]
    return change


DEEP = "[" * 5000 + "]" * 5000
MALFORMED = {
    # unreadable lines: exit 4
    "deep nesting": (_entry_raw(3, '{"entry": ' + DEEP + ', "proof": []}'), EXIT_UNREADABLE, "not JSON"),
    "5000-digit integer": (_raw_line(0, '{"format": "lfr-audit-export", "version": 1' + ', "n": ' + "9" * 5000 + "}"),
                           EXIT_UNREADABLE, "out of range"),
    "1e999": (_entry_raw(3, '{"entry": 1e999, "proof": []}'), EXIT_UNREADABLE, "out of range"),
    "NaN": (_entry_raw(3, '{"entry": NaN, "proof": []}'), EXIT_UNREADABLE, "not a JSON number"),
    "lone surrogate key": (_entry_raw(3, '{"entry": "x", "\\udcff": 1, "proof": []}'), EXIT_UNREADABLE,
                           "lone surrogate"),
    "duplicate key": (_entry_raw(3, '{"entry": "x", "entry": "y", "proof": []}'), EXIT_UNREADABLE, "appears twice"),
    "over-long line": (_entry_raw(3, '{"entry": "' + "a" * 70_000 + '", "proof": []}'), EXIT_UNREADABLE,
                       "longer than 65536 bytes"),
    "header is a list": (_raw_line(0, "[1, 2]"), EXIT_UNREADABLE, "not a JSON object"),
    "header first_seq text": (_header_set(first_seq="0"), EXIT_UNREADABLE, "'first_seq' must be a non-negative"),
    "header first_seq huge": (_header_set(first_seq=10 ** 18), EXIT_UNREADABLE, "'first_seq' must be a non-negative"),
    "header unknown field": (_header_set(comment="trust me"), EXIT_UNREADABLE, "header fields differ"),
    "header unit not an id": (_header_set(unit={"a": 1}), EXIT_UNREADABLE, "'unit' must be an identifier"),
    "header previous_head a number": (_header_set(previous_head=5), EXIT_UNREADABLE, "'previous_head' must be"),
    # readable lines of the wrong shape or meaning: exit 10
    "entry is a number": (_entry_set(3, entry=7), EXIT_FAILED, "not a valid audit entry"),
    "proof is a dict": (_entry_set(3, proof={"a": 1}), EXIT_FAILED, "entry seq 3: is not in the tree"),
    "extra field on an entry line": (_entry_set(3, note="confirmed"), EXIT_FAILED, "exactly entry and proof"),
    "head is a list": (lambda lines: _edit_line(lines, head_index(lines, 1), lambda o: o.update(head=[1])),
                       EXIT_FAILED, "tree head at line"),
    "end is text": (_raw_line(-1, '{"end": "done"}'), EXIT_FAILED, "end line"),
    "seq 10**18": (_inner_entry(3, lambda t: t.replace('"seq":3', '"seq":1000000000000000000')), EXIT_FAILED,
                   "envelope field 'seq'"),
    "type is a list": (_inner_entry(3, lambda t: re.sub(r'"type":"[a-z_]+"', '"type":["fault"]', t)), EXIT_FAILED,
                       "not a valid audit entry"),
    "entry line with a lone surrogate": (_inner_entry(3, lambda t: t.replace("op-kestrel-1", "op-\udcff")),
                                         EXIT_UNREADABLE, "lone surrogate"),
    "entry text with an escaped lone surrogate": (_inner_entry(3, lambda t: t.replace("op-kestrel-1", "op-\\udcff")),
                                                  EXIT_FAILED, "lone surrogate"),
    "non-canonical entry": (_inner_entry(3, lambda t: t.replace(",", ", ", 1)), EXIT_FAILED, "canonical"),
    "header log id of another key": (_header_set(log_id="0" * 32), EXIT_FAILED, "log id is not the one"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_export(unit, tmp_path, case):
    _key, raw, genuine = unit
    mutate, code, text = MALFORMED[case]
    path = write_lines(tmp_path / "bad.jsonl", mutate(read_lines(genuine)))
    assert_both(path, code, text, "--unit-key", raw)


def test_non_utf8_bytes_in_a_key(unit, tmp_path):
    _key, raw, genuine = unit
    data = genuine.read_bytes().replace(b'"proof"', b'"pro\xffof"', 1)
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(data)
    assert_both(path, EXIT_UNREADABLE, "not JSON", "--unit-key", raw)


PREVIOUS_HEADS = {
    "a number": "5\n", "a list": "[]\n", "body a number": '{"body": 5, "signature": "AA=="}\n',
    "deep": DEEP + "\n", "empty": "", "huge integer": "9" * 5000 + "\n", "not UTF-8": b"\xff\xfe\n",
    "head fields of the wrong type": json.dumps({"body": json.dumps({"v": 1, "head_no": "1"}),
                                                 "signature": "AAAA"}) + "\n",
}


@pytest.mark.parametrize("case", sorted(PREVIOUS_HEADS))
def test_previous_head_file_of_the_wrong_shape(unit, tmp_path, case):
    _key, raw, genuine = unit
    content = PREVIOUS_HEADS[case]
    head = tmp_path / "previous.json"
    head.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    assert_both(genuine, EXIT_UNREADABLE, "error:", "--unit-key", raw, "--previous-head", head)


@pytest.mark.parametrize("what", ["export", "previous head", "unit key"])
def test_fifo_or_directory_never_hangs(unit, tmp_path, what):
    _key, raw, genuine = unit
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for odd in (fifo, tmp_path):
        args = {"export": [odd, "--unit-key", raw], "previous head": [genuine, "--previous-head", odd],
                "unit key": [genuine, "--unit-key", odd]}[what]
        assert_both(args[0], EXIT_UNREADABLE, "error:", *args[1:])


def test_bad_unit_key_text_is_unreadable_not_a_crash(unit):
    _key, _raw, genuine = unit
    assert_both(genuine, EXIT_UNREADABLE, "not an Ed25519 public key", "--unit-key", "zz" * 40)


def test_genuine_export_and_its_report_through_both_entry_points(unit):
    key, raw, genuine = unit
    assert_both(genuine, EXIT_OK, "OK: ", "--unit-key", raw)
    entries, head = entries_from_export(genuine, key.public_key())
    assert len(entries) == head["tree_size"] and build_report(entries)["alerts"] == 14


def test_heads_removed_from_the_front_of_a_full_export(tmp_path):
    key = new_key()
    path = exported(tmp_path, key, n=40)
    lines = read_lines(path)
    del lines[head_index(lines, 0)]
    lines[-1] = json.dumps({"end": {"entries": json.loads(lines[-1])["end"]["entries"],
                                    "heads": json.loads(lines[-1])["end"]["heads"] - 1}})
    path = write_lines(tmp_path / "nohead0.jsonl", lines)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    assert_both(path, EXIT_FAILED, "tree heads #0..#0: missing", "--unit-key", raw)
