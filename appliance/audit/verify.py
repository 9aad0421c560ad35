"""Offline verification of an audit export: what an auditor runs on a laptop.

Imports the standard library, ``cryptography`` and this package's merkle, events,
heads, export_format and verify_checks modules only (tests/test_audit_verify_imports.py
proves it), so ``python -m appliance.audit.verify EXPORT [--unit-key KEY] [--previous-head FILE]``
runs without numpy, OpenCV, an inference runtime, pydantic, sqlite-utils or MQTT.

It checks every head signature and the head chain, recomputes the Merkle tree
over the entries (when the export starts at seq 0), checks every inclusion proof
and consistency proof, cross-checks every header field against the signed heads
and entries, refuses anything after the end line, and names each entry or tree
head that fails and why.

Exit codes: 0 verified; 1 internal error (a bug in the verifier); 2 usage error;
4 the file (or key or previous head) is not readable as one; 10 verification
failed (altered, reordered, deleted, truncated, appended, spliced, not anchored,
or not signed by the unit key). Also in docs/audit.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import heads
from .export_format import (EXPORT_FORMAT, EXPORT_VERSION, ExportReader, check_header,  # noqa: F401
                            read_small_file)
from .verify_checks import (ExportFormatError, check_entries, check_heads, check_previous,
                            check_previous_head, check_sequence, check_start, check_times)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_UNREADABLE, EXIT_FAILED = 0, 1, 2, 4, 10
EXIT_TEXT = "exit codes: 0 verified, 1 internal error, 2 usage error, 4 unreadable export, 10 verification failed"
MAX_SHOWN = 50


@dataclass
class Verdict:
    """The outcome: problems (place, reason) and what was verified."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    entries: list[dict] | None = None  # the decoded entries, kept on request and only when ok

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
    """A tree head from a head JSON file or from an export (its final head); ExportFormatError otherwise."""
    try:
        with ExportReader(Path(path)) as reader:
            first = reader.next()
            if first is None:
                raise ExportFormatError(f"{path}: empty file")
            if first.get("format") != EXPORT_FORMAT:
                return heads.TreeHead.from_json(first)
            last = None
            while (obj := reader.next()) is not None and "head" in obj:
                last = obj["head"]
            if last is None:
                raise ExportFormatError(f"{path}: export holds no tree head")
            return heads.TreeHead.from_json(last)
    except heads.HeadError as exc:
        raise ExportFormatError(f"{path}: not a tree head or export file: {exc}") from None


def _choose_key(header: dict, pinned, verdict: Verdict):
    try:
        carried = heads.load_public_key(header["public_key"])
    except heads.HeadError as exc:
        raise ExportFormatError(f"export header: unit public key unreadable: {exc}") from None
    if header["key_fingerprint"] != heads.fingerprint(carried) or header["log_id"] != heads.log_id(carried):
        verdict.fail("export header", "its key fingerprint or log id is not the one of the key it carries")
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


def verify_export(path: Path, unit_key=None, previous_head: heads.TreeHead | None = None, *,
                  partial: bool = False, keep_entries: bool = False) -> Verdict:
    """Verify the export at ``path``; raise ExportFormatError when it cannot be read at all.

    ``previous_head`` is the auditor's own last verified head: the only thing that can show
    that an export starting after seq 0 left nothing out. Without it such an export fails
    unless ``partial`` accepts verifying just the window it holds. With ``keep_entries``
    the verdict keeps the decoded entries (what `audit report --export` counts).
    """
    verdict = Verdict()
    with ExportReader(Path(path)) as reader:
        header = check_header(reader.next(), reader.path)
        key = _choose_key(header, unit_key, verdict)
        log_id = heads.log_id(key)
        verdict.facts.update(unit=header["unit"], log_id=log_id, key_fingerprint=heads.fingerprint(key))
        against = previous_head or _carried_previous(header)
        prev = check_previous_head(against, key, verdict)
        chain = check_heads(reader, header, key, verdict)
        if chain is None:
            return verdict
        if prev is not None:
            chain.by_size.setdefault(prev["tree_size"], []).append(
                (f"your previous head #{prev['head_no']} (tree size {prev['tree_size']})",
                 heads.root_of(prev), "does not match entries 0..{last} as exported: the log was "
                 "rewritten since that head was verified"))
        scan = check_entries(reader, header, chain, log_id, verdict, keep=keep_entries)
    check_sequence(scan.seqs, header, chain, verdict)
    anchor = prev if previous_head is not None else None
    check_start(header, chain, anchor, partial, verdict)
    check_previous(prev, against, header, chain, verdict)
    check_times(header, chain, scan.first_time, verdict)
    verdict.entries = scan.decoded if verdict.ok else None
    return verdict


def _carried_previous(header: dict) -> heads.TreeHead | None:
    """The previous head the export itself claims (checked, but it proves nothing about what was left out)."""
    if header["previous_head"] is None:
        if header["previous_consistency"] is not None:
            raise ExportFormatError("export header: previous_consistency without previous_head")
        return None
    try:
        return heads.TreeHead.from_json(header["previous_head"])
    except heads.HeadError as exc:
        raise ExportFormatError(f"export header: previous_head unreadable: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m appliance.audit.verify``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="appliance audit verify", description=__doc__.split("\n\n")[0],
                                     epilog=EXIT_TEXT)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Exception as exc:  # noqa: BLE001 - the verifier's one boundary: a bug, never a traceback
        print(f"error: internal error in the verifier: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("fix: this is a bug in the verifier; keep the file and report it", file=sys.stderr)
        return EXIT_INTERNAL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by this entry point and `appliance audit verify`."""
    parser.add_argument("export", help="the export file (.jsonl) to verify")
    parser.add_argument("--unit-key", help="the unit's Ed25519 public key: a PEM file, or base64/hex text")
    parser.add_argument("--previous-head", help="your last verified head (a head file or previous export)")
    parser.add_argument("--partial", action="store_true",
                        help="accept an export that starts after seq 0 without --previous-head "
                             "(verifies only the window it holds)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def run(args: argparse.Namespace) -> int:
    """Verify per ``args``, print the verdict, return the documented exit code."""
    try:
        pinned = load_pinned(args.unit_key) if args.unit_key else None
        previous = load_head_file(Path(args.previous_head)) if args.previous_head else None
        verdict = verify_export(Path(args.export), pinned, previous, partial=args.partial)
    except (ExportFormatError, heads.HeadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps({"ok": verdict.ok, "problems": [{"where": w, "why": y} for w, y in verdict.problems],
                          "warnings": verdict.warnings, **verdict.facts}, indent=2))
    else:
        print(verdict.render())
    return EXIT_OK if verdict.ok else EXIT_FAILED


def load_pinned(value: str):
    """The unit key to pin: a key file (PEM or text) or the key itself as base64/hex text."""
    path = Path(value)
    text = read_small_file(path) if path.exists() else value
    return heads.load_public_key(text)


if __name__ == "__main__":
    sys.exit(main())
