"""The individual checks behind verify.py; each names the entry or head that fails and why.

Standard library plus ``cryptography`` only (imported by the offline verifier).
Nothing in the export header is trusted: every header field that the signed heads
or the signed entries can confirm is checked against them.
"""
from __future__ import annotations

import binascii
from array import array
from dataclasses import dataclass, field

from . import events, heads, merkle
from .export_format import ExportFormatError, check_end, line_kind

__all__ = ["Chain", "ExportFormatError", "check_heads", "check_entries", "check_sequence", "check_start",
           "check_previous_head", "check_previous"]

_WHY_ROOT = ("its root does not match entries 0..{last} as exported (an entry before seq {size} was "
             "altered, removed, added or moved)")
MAX_PROOF = 128  # hashes in one proof: two per tree level is far more than any log can have


@dataclass
class Chain:
    """The verified view of the heads: the final head and the roots expected at given sizes."""

    final: dict
    final_root: bytes
    heads: list = field(default_factory=list)      # fields of every head kept, in chain order
    numbers: dict = field(default_factory=dict)    # head_no -> body bytes
    by_size: dict = field(default_factory=dict)    # tree size -> [(place, root, why)]
    head_lines: int = 0                            # head lines in the file, valid or not


@dataclass
class EntryScan:
    """What the entry lines held: their seqs (-1 where unreadable) and the entries that decoded."""

    seqs: array
    decoded: list | None
    first_time: str | None = None


def _b64list(value: object) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF:
        raise ValueError(f"proof is not a list of at most {MAX_PROOF} hashes")
    try:
        return [binascii.a2b_base64(v, strict_mode=True) for v in value]
    except TypeError:
        raise ValueError("proof holds a value that is not base64 text") from None


def _head_name(fields: dict) -> str:
    return f"tree head #{fields['head_no']} (tree size {fields['tree_size']}, {fields['time']})"


def _check_link(fields: dict, prev: tuple[dict, str] | None, line: int, verdict) -> bool:
    """Check the head's place in the chain; False when it must be skipped as out of place."""
    if prev is None:
        return True
    pfields, pdigest = prev
    no, pno = fields["head_no"], pfields["head_no"]
    if no <= pno:
        verdict.fail(f"tree head at line {line}", f"is head #{no} (tree size {fields['tree_size']}, "
                     f"{fields['time']}) but follows head #{pno}: an older head put in place of a newer "
                     f"one, or heads reordered")
        return False
    if no > pno + 1:
        verdict.fail(_head_name(fields), f"head(s) #{pno + 1}..#{no - 1} are missing before it")
    elif fields["prev"] != pdigest:
        verdict.fail(_head_name(fields), f"does not link to head #{pno} (its prev digest names another head)")
    if fields["tree_size"] < pfields["tree_size"]:
        verdict.fail(_head_name(fields), f"covers fewer entries than head #{pno} "
                     f"({pfields['tree_size']}): the log was rolled back")
    return True


def _signed_head(obj: dict, line: int, header: dict, key, verdict) -> tuple[heads.TreeHead, dict] | None:
    """The head on one line if it is well formed and signed by the unit key (else named and skipped)."""
    try:
        head = heads.TreeHead.from_json(obj["head"])
    except heads.HeadError as exc:
        verdict.fail(f"tree head at line {line}", str(exc))
        return None
    fields = head.fields
    try:
        heads.verify_head(head, key)
    except heads.HeadError as exc:
        verdict.fail(_head_name(fields), f"{exc} (left out of the chain)")
        return None
    if fields["unit"] != header["unit"]:
        verdict.fail(_head_name(fields), f"names unit {fields['unit']}, not {header['unit']}")
    return head, fields


def _read_head_lines(reader, header: dict, key, verdict) -> tuple[list, int]:
    kept, prev, lines = [], None, 0
    while (obj := reader.next()) is not None and "head" in obj:
        lines += 1
        if line_kind(obj) != "head":
            verdict.fail(f"line {reader.line_no}", "a tree head line must hold exactly head and consistency")
            continue
        signed = _signed_head(obj, reader.line_no, header, key, verdict)
        if signed and _check_link(signed[1], prev, reader.line_no, verdict):
            kept.append((*signed, obj["consistency"], reader.line_no))
            prev = (signed[1], signed[0].digest())
    reader.pending = obj
    return kept, lines


def _check_consistency(fields: dict, proof: object, final: dict, final_root: bytes, verdict) -> None:
    size1, size2 = fields["tree_size"], final["tree_size"]
    if size1 > size2:
        verdict.fail(_head_name(fields), f"covers more entries than the final head #{final['head_no']} "
                     f"({size2}): the final head was replaced by an older one")
        return
    try:
        if size1 == size2:
            merkle.verify_consistency(size1, size2, [], heads.root_of(fields), final_root)
        elif size1 > 0:
            merkle.verify_consistency(size1, size2, _b64list(proof), heads.root_of(fields), final_root)
    except (merkle.ProofError, ValueError) as exc:
        verdict.fail(_head_name(fields), f"is not consistent with final head #{final['head_no']}: {exc} "
                     f"(the log was rewritten between them)")


def check_heads(reader, header: dict, key, verdict) -> Chain | None:
    """Signatures, unit, numbering, prev links, sizes and consistency of every head."""
    kept, lines = _read_head_lines(reader, header, key, verdict)
    if not kept:
        verdict.fail("tree heads", "the export holds no valid tree head")
        return None
    _head, final, _proof, _line = kept[-1]
    if final["head_no"] != header["final_head_no"]:
        verdict.fail(f"final {_head_name(final)}", f"the export header names head "
                     f"#{header['final_head_no']} as final: heads were replaced or removed at the end")
    chain = Chain(final, heads.root_of(final), head_lines=lines)
    for head, fields, proof, _line in kept:
        _check_consistency(fields, proof, final, chain.final_root, verdict)
        chain.heads.append(fields)
        chain.numbers[fields["head_no"]] = head.body
        chain.by_size.setdefault(fields["tree_size"], []).append(
            (_head_name(fields), heads.root_of(fields), _WHY_ROOT))
    verdict.facts.update(heads=len(kept), final_head_no=final["head_no"], tree_size=final["tree_size"],
                         final_time=final["time"], root=final["root"])
    return chain


def _check_entry(obj: dict, seq_hint: int, chain: Chain, header: dict, log_id: str,
                 verdict) -> tuple[int, bytes, dict | None]:
    """Check one entry line; return (its claimed seq or -1, its leaf hash, the entry when it holds)."""
    text = obj["entry"]
    data = text.encode("utf-8") if isinstance(text, str) else b""
    leaf = merkle.leaf_hash(data)
    try:
        entry = events.decode_entry(data)
    except events.EventError as exc:
        verdict.fail(f"entry at position {seq_hint}", f"not a valid audit entry: {exc}")
        return -1, leaf, None
    seq, name, final = entry["seq"], f"entry seq {entry['seq']}", chain.final
    if entry["log"] != log_id or entry["unit"] != header["unit"]:
        verdict.fail(name, f"belongs to log {entry['log']} (unit {entry['unit']}), not this log {log_id} "
                     f"(unit {header['unit']}): spliced in from another unit's export")
    elif seq >= final["tree_size"]:
        verdict.fail(name, f"lies beyond the final signed head #{final['head_no']} "
                     f"({final['tree_size']} entries): not covered by any signature")
    else:
        try:
            merkle.verify_inclusion(seq, final["tree_size"], leaf, _b64list(obj["proof"]), chain.final_root)
            return seq, leaf, entry
        except (merkle.ProofError, ValueError) as exc:
            verdict.fail(name, f"is not in the tree signed by final head #{final['head_no']}: its bytes "
                         f"differ from what was signed (altered) [{exc}]")
    return seq, leaf, None


def _check_end(obj: dict | None, reader, scan: EntryScan, chain: Chain, verdict) -> None:
    if obj is None:
        verdict.fail("end of file", f"the file stops after line {reader.line_no} without its end line: "
                                    "cut short")
        return
    end = check_end(obj) if line_kind(obj) == "end" else None
    if end is None:
        verdict.fail("end line", "must be {\"end\": {\"entries\": n, \"heads\": m}}")
    elif end["entries"] != len(scan.seqs) or end["heads"] != chain.head_lines:
        verdict.fail("end line", f"counts {end['entries']} entries and {end['heads']} heads; the file holds "
                                 f"{len(scan.seqs)} and {chain.head_lines}")
    extra = reader.count_rest()
    if extra:
        verdict.fail(f"line {reader.line_no + 1}", f"{extra} line(s) follow the end line: appended after the "
                     "export was written (nothing may follow the end line)")


def check_entries(reader, header: dict, chain: Chain, log_id: str, verdict, keep: bool = False) -> EntryScan:
    """Check every entry line and the end line; recompute the tree when the export starts at seq 0."""
    first = header["first_seq"]
    recompute = first == 0
    rng, scan = merkle.CompactRange(), EntryScan(array("q"), [] if keep else None)
    while (obj := reader.next()) is not None and "end" not in obj:
        if line_kind(obj) != "entry":
            verdict.fail(f"line {reader.line_no}", "neither an entry line (exactly entry and proof) nor the "
                                                   "end line (out of place)")
            continue
        seq, leaf, entry = _check_entry(obj, first + len(scan.seqs), chain, header, log_id, verdict)
        scan.seqs.append(seq)
        if entry is not None and scan.decoded is not None:
            scan.decoded.append(entry)
        if entry is not None and scan.first_time is None:
            scan.first_time = entry["time"]
        if recompute:
            rng.append(leaf)
            for place, root, why in chain.by_size.get(rng.size, ()):
                if rng.root() != root:
                    verdict.fail(place, why.format(last=rng.size - 1, size=rng.size))
    _check_end(obj, reader, scan, chain, verdict)
    valid = [s for s in scan.seqs if s >= 0]
    verdict.facts.update(entries=len(scan.seqs), first_seq=min(valid, default=None),
                         last_seq=max(valid, default=None), recomputed_tree=recompute)
    return scan


def _ranges(missing: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s in missing:
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


def _gaps(present: list[int], lo: int, hi: int) -> list[tuple[int, int]]:
    """Ranges of [lo, hi) absent from the sorted, distinct ``present`` (never walks the whole range)."""
    gaps, expect = [], lo
    for s in present:
        if s > expect:
            gaps.append((expect, s - 1))
        expect = max(expect, s + 1)
    if expect < hi:
        gaps.append((expect, hi - 1))
    return gaps


def _place(a: int, b: int) -> str:
    return f"entry seq {a}" if a == b else f"entries seq {a}..{b}"


def check_sequence(seqs: array, header: dict, chain: Chain, verdict) -> None:
    """Each seq once, in order, none below the header's first_seq and none missing up to the final size."""
    first, size, final_no = header["first_seq"], chain.final["tree_size"], chain.final["head_no"]
    for prev, cur in zip(seqs, seqs[1:]):
        if cur < 0 or prev < 0:
            continue
        if cur == prev:
            verdict.fail(f"entry seq {cur}", "appears twice")
        elif cur < prev:
            verdict.fail(f"entry seq {cur}", f"appears after seq {prev}: entries swapped or reordered")
    present = sorted({s for s in seqs if s >= 0})
    for a, b in _ranges([s for s in present if s < first]):
        verdict.fail(_place(a, b), f"lies before seq {first}, where the export header says the export starts "
                                   "(the header was edited to hide what is missing)")
    start = min([first, *present[:1]])
    for a, b in _gaps(present, start, size):
        if b == size - 1:
            verdict.fail(_place(a, b), f"missing at the tail: final head #{final_no} signs {size} entries but "
                                       f"the export stops at seq {a - 1} (truncated)")
        else:
            verdict.fail(_place(a, b), f"missing (deleted): the entries jump from seq {a - 1} to seq {b + 1}")
    if header["entry_count"] != len(seqs) or first + header["entry_count"] != size:
        verdict.fail("export header", f"says {header['entry_count']} entries from seq {first}; the file holds "
                                      f"{len(seqs)} and final head #{final_no} signs {size}")


def check_start(header: dict, chain: Chain, anchor: dict | None, partial: bool, verdict) -> None:
    """Where the export starts, checked against the signed heads it carries and the auditor's head."""
    first, base = header["first_seq"], chain.heads[0]
    if first == 0:
        if base["head_no"] != 0:
            verdict.fail(f"tree heads #0..#{base['head_no'] - 1}", "missing: an export from seq 0 carries "
                         "every head from head #0 (heads were removed from the front)")
        return
    if header["since"] is None and header["previous_head"] is None:
        verdict.fail("export header", f"first_seq {first} without since or previous_head: such an export "
                                      "starts at seq 0 (the header was edited)")
    if base["tree_size"] > first:
        verdict.fail(_head_name(base), f"is the first head but covers entries past seq {first} where the "
                     "export starts: an export starts at the last head at or before its first entry")
    if len(chain.heads) > 1 and chain.heads[1]["tree_size"] <= first:
        second = chain.heads[1]
        verdict.fail(_head_name(second), f"signs {second['tree_size']} entries, yet the export starts at seq "
                     f"{first}: entries seq {second['tree_size']}..{first - 1} were removed (an export starts "
                     "at the last head at or before its first entry)")
    verdict.facts["partial"] = True
    if anchor is not None:
        return
    if partial:
        verdict.warnings.append(f"partial export from seq {first}, accepted with --partial: this proves the "
                                "entries it holds, not that nothing before them was left out")
        return
    verdict.fail(_place(0, first - 1), "not in this export, and no head you hold shows that none were left out: "
                 "pass --previous-head (your last verified head), or --partial to verify only this window")


def check_times(header: dict, chain: Chain, first_time: str | None, verdict) -> None:
    """The header's since/until/exported_at against the signed final head and first entry."""
    final = chain.final
    if header["until"] is not None and final["time"] > header["until"]:
        verdict.fail("export header", f"until {header['until']}, but final head #{final['head_no']} was signed "
                                      f"at {final['time']}")
    if header["since"] is not None and first_time is not None and first_time < header["since"]:
        verdict.fail("export header", f"since {header['since']}, but the first entry was written at {first_time}")
    if header["exported_at"] < final["time"]:
        verdict.warnings.append(f"export header: exported_at {header['exported_at']} is before the final "
                                f"head's time {final['time']} (a clock step on the unit, or an edited header)")


def check_previous_head(previous: heads.TreeHead | None, key, verdict) -> dict | None:
    """The auditor's previous head must be signed by this unit's key."""
    if previous is None:
        return None
    try:
        return heads.verify_head(previous, key)
    except heads.HeadError as exc:
        verdict.fail("your previous head", f"{exc} (not a head of this unit's log)")
        return None


def check_previous(prev: dict | None, previous: heads.TreeHead | None, header: dict, chain: Chain,
                   verdict) -> None:
    """Rollback, rewrite and continuity checks against the previous head."""
    if prev is None:
        return
    final, name = chain.final, f"your previous head #{prev['head_no']} (tree size {prev['tree_size']})"
    if prev["tree_size"] > final["tree_size"]:
        verdict.fail(name, f"covers more entries than the export's final head #{final['head_no']} "
                     f"({final['tree_size']}): the log was rolled back, or this export is older")
        return
    same = chain.numbers.get(prev["head_no"])
    if same is not None and same != previous.body:
        verdict.fail(name, "differs from the export's head with the same number: the log was rewritten")
    if header["first_seq"] == 0:
        return  # its root was compared with the recomputed tree
    if header["first_seq"] > prev["tree_size"]:
        verdict.fail(f"entries seq {prev['tree_size']}..{header['first_seq'] - 1}",
                     "missing: the export does not continue from your previous head")
    carried = header["previous_head"]
    body = carried.get("body") if isinstance(carried, dict) else None  # a hostile header may carry anything
    if not isinstance(body, str) or body.encode("utf-8") != previous.body:
        verdict.fail(name, "the export carries no consistency proof from it: export again with "
                     "--previous-head set to this head")
        return
    try:
        merkle.verify_consistency(prev["tree_size"], final["tree_size"],
                                  _b64list(header["previous_consistency"]),
                                  heads.root_of(prev), chain.final_root)
    except (merkle.ProofError, ValueError) as exc:
        verdict.fail(name, f"the export's final head is not an extension of it: {exc} (log rewritten)")
