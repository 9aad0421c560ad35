"""Offline verification of an audit export: what an auditor runs on a laptop.

Imports the standard library, ``cryptography`` and this package's merkle, events
and heads modules only (tests/test_audit_verify_imports.py proves it), so
``python -m appliance.audit.verify EXPORT [--unit-key KEY] [--previous-head FILE]``
runs without numpy, OpenCV, an inference runtime, pydantic, sqlite-utils or MQTT.

It checks every head signature and the head chain, recomputes the Merkle tree
over the entries (when the export starts at seq 0), checks every inclusion proof
and consistency proof, and names each entry or tree head that fails and why.

Exit codes: 0 verified; 2 usage error; 4 the file is not a readable export;
10 verification failed (altered, reordered, truncated, spliced or not signed by
the unit key). Also in docs/audit.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import heads
from .verify_checks import (ExportFormatError, check_entries, check_heads, check_previous,
                            check_previous_head, check_sequence)

EXPORT_FORMAT = "lfr-audit-export"
EXPORT_VERSION = 1
EXIT_OK, EXIT_USAGE, EXIT_UNREADABLE, EXIT_FAILED = 0, 2, 4, 10
MAX_SHOWN = 50


@dataclass
class Verdict:
    """The outcome: problems (place, reason) and what was verified."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems

    def fail(self, where: str, why: str) -> None:
        """Record that ``where`` (an entry or tree head) fails because ``why``."""
        self.problems.append((where, why))

    def render(self) -> str:
        """Human-readable report: OK with the facts, or FAILED with each place and reason."""
        f = self.facts
        lines = []
        if self.ok:
            lines.append(f"OK: {f.get('entries', 0)} entries (seq {f.get('first_seq')}..{f.get('last_seq')}), "
                         f"{f.get('heads', 0)} signed tree heads; final head #{f.get('final_head_no')} "
                         f"(tree size {f.get('tree_size')}, {f.get('final_time')}, root {f.get('root')})")
        else:
            lines.append(f"FAILED: {len(self.problems)} problem(s)")
            # the places first (entries), then what they break (head roots computed over them)
            shown = sorted(self.problems, key=lambda p: not p[0].startswith(("entry", "entries")))
            lines += [f"  - {where}: {why}" for where, why in shown[:MAX_SHOWN]]
            if len(self.problems) > MAX_SHOWN:
                lines.append(f"  ... and {len(self.problems) - MAX_SHOWN} more")
        lines.append(f"unit {f.get('unit')}, log {f.get('log_id')}, key {f.get('key_fingerprint')} "
                     f"({f.get('key_source')})")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def load_head_file(path: Path) -> heads.TreeHead:
    """A tree head from a head JSON file or from an export (its final head)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = json.loads(fh.readline())
            if isinstance(first, dict) and first.get("format") == EXPORT_FORMAT:
                last = None
                for line in fh:
                    obj = json.loads(line)
                    if "head" not in obj:
                        break
                    last = obj["head"]
                if last is None:
                    raise ExportFormatError(f"{path}: export holds no tree head")
                return heads.TreeHead.from_json(last)
            return heads.TreeHead.from_json(first)
    except (OSError, ValueError) as exc:
        raise ExportFormatError(f"{path}: not a tree head or export file: {exc}") from None


class _Reader:
    """Reads an export line by line, remembering the line number for messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed by verify_export
        self.line_no = 0
        self.pending: dict | None = None

    def next(self) -> dict | None:
        """The next JSON object, or None at end of file."""
        if self.pending is not None:
            obj, self.pending = self.pending, None
            return obj
        try:
            line = self.fh.readline()
        except UnicodeDecodeError as exc:
            raise ExportFormatError(f"{self.path}: line {self.line_no + 1} is not UTF-8: {exc}") from None
        if not line:
            return None
        self.line_no += 1
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ExportFormatError(f"{self.path}: line {self.line_no} is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ExportFormatError(f"{self.path}: line {self.line_no} is not a JSON object")
        return obj


def _read_header(reader: _Reader) -> dict:
    header = reader.next()
    if not header or header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError(f"{reader.path}: not an audit export (no '{EXPORT_FORMAT}' header)")
    if header.get("version") != EXPORT_VERSION:
        raise ExportFormatError(f"{reader.path}: export version {header.get('version')!r} unsupported "
                                f"(this verifier reads version {EXPORT_VERSION})")
    return header


def _choose_key(header: dict, pinned, verdict: Verdict):
    try:
        carried = heads.load_public_key(str(header.get("public_key", "")))
    except heads.HeadError as exc:
        raise ExportFormatError(f"export header: unit public key unreadable: {exc}") from None
    if pinned is None:
        verdict.warnings.append("unit key taken from the export itself; pin the key you hold for "
                                "this unit with --unit-key")
        verdict.facts["key_source"] = "key from the export, not pinned"
        return carried
    verdict.facts["key_source"] = "pinned with --unit-key"
    if heads.public_raw(carried) != heads.public_raw(pinned):
        verdict.fail("export header", f"carries unit key {heads.fingerprint(carried)}, not the pinned "
                                      f"key {heads.fingerprint(pinned)} (another unit, or a forged export)")
    return pinned


def verify_export(path: Path, unit_key=None, previous_head: heads.TreeHead | None = None) -> Verdict:
    """Verify the export at ``path``; raise ExportFormatError when it cannot be read at all."""
    verdict = Verdict()
    try:
        reader = _Reader(Path(path))
    except OSError as exc:
        raise ExportFormatError(f"{path}: cannot read: {exc.strerror}") from None
    with reader.fh:
        header = _read_header(reader)
        key = _choose_key(header, unit_key, verdict)
        log_id = heads.log_id(key)
        verdict.facts.update(unit=header.get("unit"), log_id=log_id, key_fingerprint=heads.fingerprint(key))
        previous_head = previous_head or _carried_previous(header)
        prev = check_previous_head(previous_head, key, verdict)
        chain = check_heads(reader, header, key, verdict)
        if chain is None:
            return verdict
        if prev is not None:
            chain.by_size.setdefault(prev["tree_size"], []).append(
                (f"your previous head #{prev['head_no']} (tree size {prev['tree_size']})",
                 heads.root_of(prev), "does not match entries 0..{last} as exported: the log was "
                 "rewritten since that head was verified"))
        seqs = check_entries(reader, header, chain, log_id, verdict)
        check_sequence(seqs, header, chain, verdict)
        check_previous(prev, previous_head, header, chain, verdict)
    if prev is None and header["first_seq"] > 0:
        verdict.warnings.append(f"partial export from seq {header['first_seq']}: pass --previous-head "
                                "(your last verified head) to prove nothing before it was left out")
    return verdict


def _carried_previous(header: dict) -> heads.TreeHead | None:
    """The previous head the export itself claims (checked too when the auditor gives none)."""
    if not header.get("previous_head"):
        return None
    try:
        return heads.TreeHead.from_json(header["previous_head"])
    except heads.HeadError as exc:
        raise ExportFormatError(f"export header: previous_head unreadable: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m appliance.audit.verify``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="appliance audit verify", description=__doc__.split("\n\n")[0],
                                     epilog="exit codes: 0 verified, 2 usage error, 4 unreadable export, "
                                            "10 verification failed")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by this entry point and `appliance audit verify`."""
    parser.add_argument("export", help="the export file (.jsonl) to verify")
    parser.add_argument("--unit-key", help="the unit's Ed25519 public key: a PEM file, or base64/hex text")
    parser.add_argument("--previous-head", help="your last verified head (a head file or previous export)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def run(args: argparse.Namespace) -> int:
    """Verify per ``args``, print the verdict, return the documented exit code."""
    try:
        pinned = _load_pinned(args.unit_key) if args.unit_key else None
        previous = load_head_file(Path(args.previous_head)) if args.previous_head else None
        verdict = verify_export(Path(args.export), pinned, previous)
    except (ExportFormatError, heads.HeadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps({"ok": verdict.ok, "problems": [{"where": w, "why": y} for w, y in verdict.problems],
                          "warnings": verdict.warnings, **verdict.facts}, indent=2))
    else:
        print(verdict.render())
    return EXIT_OK if verdict.ok else EXIT_FAILED


def _load_pinned(value: str):
    path = Path(value)
    text = path.read_text(encoding="utf-8") if path.is_file() else value
    return heads.load_public_key(text)


if __name__ == "__main__":
    sys.exit(main())
