"""Tampered exports: each alteration is detected by verify, which names the place."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from appliance.audit import heads
from appliance.audit.export import export_log
from appliance.audit.verify import EXIT_FAILED, EXIT_OK, EXIT_UNREADABLE, load_head_file, verify_export
from tests.audit_helpers import (entry_index, exported, fill, fix_end_count, head_index, new_key,
                                 read_lines, write_lines)


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unit")
    key = new_key()
    return key, exported(tmp, key, n=40)


def _verify_lines(tmp_path, key, lines, **kw):
    path = write_lines(tmp_path / "tampered.jsonl", lines)
    return verify_export(path, key.public_key(), **kw)


def _named(verdict, where: str, why: str) -> bool:
    return any(where in w and why in y for w, y in verdict.problems)


def _edit_entry(line: str, change) -> str:
    obj = json.loads(line)
    entry = json.loads(obj["entry"])
    change(entry)
    obj["entry"] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return json.dumps(obj)


def test_untouched_export_verifies(unit):
    key, path = unit
    verdict = verify_export(path, key.public_key())
    assert verdict.ok, verdict.render()
    assert verdict.facts["entries"] == 41 and verdict.facts["tree_size"] == 41
    assert verdict.facts["recomputed_tree"] is True


def test_edited_entry_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    i = entry_index(lines, 10)
    lines[i] = _edit_entry(lines[i], lambda e: e["payload"].update({k: v for k, v in e["payload"].items()})
                           or e.update(time="2026-01-01T00:00:00.000000Z"))
    verdict = _verify_lines(tmp_path, key, lines)
    assert not verdict.ok
    assert _named(verdict, "entry seq 10", "altered"), verdict.render()
    assert not any(w.startswith("entry seq") and "seq 10" not in w for w, _ in verdict.problems)


def test_deleted_entry_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    del lines[entry_index(lines, 17)]
    verdict = _verify_lines(tmp_path, key, fix_end_count(lines))
    assert _named(verdict, "entry seq 17", "missing (deleted)"), verdict.render()


def test_swapped_entries_are_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    a, b = entry_index(lines, 20), entry_index(lines, 21)
    lines[a], lines[b] = lines[b], lines[a]
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "entry seq 20", "appears after seq 21: entries swapped"), verdict.render()


def test_truncated_tail_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    cut = entry_index(lines, 37)
    lines = fix_end_count(lines[:cut] + lines[-1:])
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "entries seq 37..40", "missing at the tail"), verdict.render()


def test_file_cut_short_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)[:-5]
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "end of file", "cut short"), verdict.render()


def test_final_head_replaced_by_older_one_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    final_no = json.loads(lines[0])["final_head_no"]
    lines[head_index(lines, final_no)] = lines[head_index(lines, 2)]
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "tree head at line", "an older head put in place of a newer one"), verdict.render()


def test_middle_head_replaced_by_older_one_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    lines[head_index(lines, 3)] = lines[head_index(lines, 1)]
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "tree head at line", "is head #1"), verdict.render()
    assert _named(verdict, "tree head #4", "#3..#3 are missing"), verdict.render()


def test_head_signed_by_another_key_is_named(unit, tmp_path):
    key, path = unit
    lines = read_lines(path)
    i = head_index(lines, 3)
    obj = json.loads(lines[i])
    body = obj["head"]["body"].encode()
    obj["head"]["signature"] = base64.b64encode(new_key().sign(heads.SIGNING_CONTEXT + body)).decode()
    lines[i] = json.dumps(obj)
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "tree head #3", "signature does not verify with unit key"), verdict.render()


def test_entries_spliced_from_another_unit_are_named(unit, tmp_path):
    key, path = unit
    other = exported(tmp_path, new_key(), n=40, unit="van-02", name="other")
    lines, foreign = read_lines(path), read_lines(other)
    for seq in (12, 13):
        lines[entry_index(lines, seq)] = foreign[entry_index(foreign, seq)]
    verdict = _verify_lines(tmp_path, key, lines)
    for seq in (12, 13):
        assert _named(verdict, f"entry seq {seq}", "spliced in from another unit"), verdict.render()


def test_same_unit_id_other_key_splice_is_named(unit, tmp_path):
    """Two units left at the same unit id: the log id (from the key) still tells them apart."""
    key, path = unit
    other = exported(tmp_path, new_key(), n=40, unit="van-01", name="twin")
    lines, foreign = read_lines(path), read_lines(other)
    lines[entry_index(lines, 30)] = foreign[entry_index(foreign, 30)]
    verdict = _verify_lines(tmp_path, key, lines)
    assert _named(verdict, "entry seq 30", "spliced in from another unit"), verdict.render()


def test_pinned_key_of_another_unit_fails(unit):
    key, path = unit
    verdict = verify_export(path, new_key().public_key())
    assert _named(verdict, "export header", "not the pinned key")
    assert any("signature does not verify" in why for _w, why in verdict.problems)


def test_rollback_against_previous_head_is_named(tmp_path):
    key = new_key()
    db = tmp_path / "u.db"
    fill(db, key, 10)
    export_log(db, tmp_path / "old.jsonl")
    fill(db, key, 10)
    export_log(db, tmp_path / "new.jsonl")
    newer = load_head_file(tmp_path / "new.jsonl")
    verdict = verify_export(tmp_path / "old.jsonl", key.public_key(), newer)
    assert _named(verdict, "your previous head", "rolled back"), verdict.render()


def test_incremental_export_with_consistency_proof(tmp_path):
    key = new_key()
    db = tmp_path / "u.db"
    fill(db, key, 10)
    export_log(db, tmp_path / "first.jsonl")
    fill(db, key, 15)
    export_log(db, tmp_path / "second.jsonl", previous_head=tmp_path / "first.jsonl")
    previous = load_head_file(tmp_path / "first.jsonl")
    verdict = verify_export(tmp_path / "second.jsonl", key.public_key(), previous)
    assert verdict.ok, verdict.render()
    assert verdict.facts["first_seq"] == previous.fields["tree_size"]
    # dropping the first entry of the increment is caught against the previous head
    lines = read_lines(tmp_path / "second.jsonl")
    header = json.loads(lines[0])
    header["first_seq"] += 1
    lines[0] = json.dumps(header)
    del lines[entry_index(lines, previous.fields["tree_size"])]
    verdict = _verify_lines(tmp_path, key, fix_end_count(lines), previous_head=previous)
    assert _named(verdict, f"entries seq {previous.fields['tree_size']}", "does not continue"), verdict.render()


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "appliance.audit.verify", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_exit_codes_of_the_standalone_verifier(unit, tmp_path):
    key, path = unit
    pem = tmp_path / "unit.pub"
    from cryptography.hazmat.primitives import serialization
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    ok = _run_cli(path, "--unit-key", pem)
    assert ok.returncode == EXIT_OK and ok.stdout.startswith("OK: 41 entries"), ok.stdout + ok.stderr
    lines = read_lines(path)
    del lines[entry_index(lines, 5)]
    bad = _run_cli(write_lines(tmp_path / "bad.jsonl", lines), "--unit-key", pem)
    assert bad.returncode == EXIT_FAILED and "entry seq 5: missing" in bad.stdout, bad.stdout
    junk = _run_cli(write_lines(tmp_path / "junk.jsonl", ["hello"]))
    assert junk.returncode == EXIT_UNREADABLE and "not JSON" in junk.stderr
    assert _run_cli().returncode == 2


def test_random_byte_flips_never_crash_and_entry_edits_never_pass(unit, tmp_path):
    """150 random one-byte changes: verify reports or refuses, never a traceback; an entry edit never passes."""
    import random

    from appliance.audit.verify_checks import ExportFormatError

    key, path = unit
    lines = path.read_bytes().split(b"\n")
    rng = random.Random(4)
    for _ in range(150):
        row = rng.randrange(len(lines) - 1)
        col = rng.randrange(len(lines[row]))
        new = rng.choice(b'0123456789abcdef{}[]",: xyzAZ\\\xff')
        if lines[row][col] == new:
            continue
        mutated = list(lines)
        mutated[row] = lines[row][:col] + bytes([new]) + lines[row][col + 1:]
        target = tmp_path / "flip.jsonl"
        target.write_bytes(b"\n".join(mutated))
        try:
            verdict = verify_export(target, key.public_key())
        except (ExportFormatError, heads.HeadError):
            continue
        inside_entry = lines[row].startswith(b'{"entry": "') and col < lines[row].index(b'", "proof"')
        assert not (inside_entry and verdict.ok), f"line {row + 1} col {col} changed and still verified"


def test_since_and_until_select_a_signed_range(tmp_path):
    key = new_key()
    db = tmp_path / "u.db"
    fill(db, key, 40)
    export_log(db, tmp_path / "full.jsonl")
    lines = read_lines(tmp_path / "full.jsonl")
    body2 = json.loads(json.loads(lines[head_index(lines, 2)])["head"]["body"])
    summary = export_log(db, tmp_path / "until.jsonl", until=body2["time"])
    assert summary["final_head_no"] == 2 and summary["tree_size"] == body2["tree_size"]
    verdict = verify_export(tmp_path / "until.jsonl", key.public_key())
    assert verdict.ok and verdict.facts["last_seq"] == body2["tree_size"] - 1, verdict.render()
    entry20 = json.loads(json.loads(lines[entry_index(lines, 20)])["entry"])
    summary = export_log(db, tmp_path / "since.jsonl", since=entry20["time"])
    assert summary["first_seq"] <= 20
    verdict = verify_export(tmp_path / "since.jsonl", key.public_key(), partial=True)
    assert verdict.ok and any("partial export" in w for w in verdict.warnings), verdict.render()
    # without --partial (or the auditor's previous head) nothing shows that the start was not cut
    verdict = verify_export(tmp_path / "since.jsonl", key.public_key())
    assert not verdict.ok and "--partial" in verdict.render()
