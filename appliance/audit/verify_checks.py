"""The individual checks behind verify.py; each names the entry or head that fails and why.

Standard library plus ``cryptography`` only (imported by the offline verifier).
"""
from __future__ import annotations

import binascii
from array import array
from dataclasses import dataclass, field

from . import events, heads, merkle

_WHY_ROOT = ("its root does not match entries 0..{last} as exported (an entry before seq {size} was "
             "altered, removed, added or moved)")


class ExportFormatError(ValueError):
    """The file is not a readable audit export (exit code 4)."""


@dataclass
class Chain:
    """The verified view of the heads: the final head and the roots expected at given sizes."""

    final: dict
    final_root: bytes
    numbers: dict = field(default_factory=dict)   # head_no -> body bytes
    by_size: dict = field(default_factory=dict)   # tree size -> [(place, root, why)]


def _b64list(value: object) -> list[bytes]:
    if not isinstance(value, list):
        raise ValueError("proof is not a list")
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


def _read_head_lines(reader, header: dict, key, verdict) -> list[tuple[heads.TreeHead, dict, object, int]]:
    kept, prev = [], None
    while (obj := reader.next()) is not None and "head" in obj:
        try:
            head = heads.TreeHead.from_json(obj["head"])
            fields = head.fields
        except heads.HeadError as exc:
            verdict.fail(f"tree head at line {reader.line_no}", str(exc))
            continue
        try:
            heads.verify_head(head, key)
        except heads.HeadError as exc:
            verdict.fail(_head_name(fields), str(exc))
        if fields["unit"] != header.get("unit"):
            verdict.fail(_head_name(fields), f"names unit {fields['unit']}, not {header.get('unit')}")
        if _check_link(fields, prev, reader.line_no, verdict):
            kept.append((head, fields, obj.get("consistency"), reader.line_no))
            prev = (fields, head.digest())
    reader.pending = obj
    return kept


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
    kept = _read_head_lines(reader, header, key, verdict)
    if not kept:
        verdict.fail("tree heads", "the export holds no valid tree head")
        return None
    _head, final, _proof, _line = kept[-1]
    if final["head_no"] != header.get("final_head_no"):
        verdict.fail(f"final {_head_name(final)}", f"the export header names head "
                     f"#{header.get('final_head_no')} as final: heads were replaced or removed at the end")
    chain = Chain(final, heads.root_of(final))
    for head, fields, proof, _line in kept:
        _check_consistency(fields, proof, final, chain.final_root, verdict)
        chain.numbers[fields["head_no"]] = head.body
        chain.by_size.setdefault(fields["tree_size"], []).append(
            (_head_name(fields), heads.root_of(fields), _WHY_ROOT))
    verdict.facts.update(heads=len(kept), final_head_no=final["head_no"], tree_size=final["tree_size"],
                         final_time=final["time"], root=final["root"])
    return chain


def _check_entry(text: object, proof: object, seq_hint: int, chain: Chain, header: dict, log_id: str,
                 verdict) -> tuple[int, bytes]:
    """Check one entry; return (its claimed seq or -1, its leaf hash)."""
    data = text.encode("utf-8") if isinstance(text, str) else b""
    leaf = merkle.leaf_hash(data)
    try:
        entry = events.decode_entry(data)
    except events.EventError as exc:
        verdict.fail(f"entry at position {seq_hint}", f"not a valid audit entry: {exc}")
        return -1, leaf
    seq, name, final = entry["seq"], f"entry seq {entry['seq']}", chain.final
    if entry["log"] != log_id or entry["unit"] != header.get("unit"):
        verdict.fail(name, f"belongs to log {entry['log']} (unit {entry['unit']}), not this log {log_id} "
                     f"(unit {header.get('unit')}): spliced in from another unit's export")
    elif not isinstance(seq, int) or seq < 0 or seq >= final["tree_size"]:
        verdict.fail(name, f"lies beyond the final signed head #{final['head_no']} "
                     f"({final['tree_size']} entries): not covered by any signature")
    else:
        try:
            merkle.verify_inclusion(seq, final["tree_size"], leaf, _b64list(proof), chain.final_root)
        except (merkle.ProofError, ValueError) as exc:
            verdict.fail(name, f"is not in the tree signed by final head #{final['head_no']}: its bytes "
                         f"differ from what was signed (altered) [{exc}]")
    return seq if isinstance(seq, int) else -1, leaf


def check_entries(reader, header: dict, chain: Chain, log_id: str, verdict) -> array:
    """Check every entry line; recompute the tree when the export starts at seq 0."""
    first = header.get("first_seq")
    if not isinstance(first, int) or first < 0:
        raise ExportFormatError("export header: first_seq is not a non-negative integer")
    recompute = first == 0
    rng, seqs = merkle.CompactRange(), array("q")
    while (obj := reader.next()) is not None and "end" not in obj:
        if "entry" not in obj:
            verdict.fail(f"line {reader.line_no}", "neither an entry nor the end line (out of place)")
            continue
        seq, leaf = _check_entry(obj["entry"], obj.get("proof"), first + len(seqs), chain, header,
                                 log_id, verdict)
        seqs.append(seq)
        if recompute:
            rng.append(leaf)
            for place, root, why in chain.by_size.get(rng.size, ()):
                if rng.root() != root:
                    verdict.fail(place, why.format(last=rng.size - 1, size=rng.size))
    if obj is None:
        verdict.fail("end of file", f"the file stops after line {reader.line_no} without its end line: "
                                    "cut short")
    elif not isinstance(obj["end"], dict) or obj["end"].get("entries") != len(seqs):
        verdict.fail("end line", f"does not count the {len(seqs)} entries the file holds")
    valid = [s for s in seqs if s >= 0]
    verdict.facts.update(entries=len(seqs), first_seq=min(valid, default=None),
                         last_seq=max(valid, default=None), recomputed_tree=recompute)
    return seqs


def _ranges(missing: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s in missing:
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


def check_sequence(seqs: array, header: dict, chain: Chain, verdict) -> None:
    """Each seq once, in order, none missing from first_seq to the final head's size."""
    first, size, final_no = header["first_seq"], chain.final["tree_size"], chain.final["head_no"]
    for prev, cur in zip(seqs, seqs[1:]):
        if cur < 0 or prev < 0:
            continue
        if cur == prev:
            verdict.fail(f"entry seq {cur}", "appears twice")
        elif cur < prev:
            verdict.fail(f"entry seq {cur}", f"appears after seq {prev}: entries swapped or reordered")
    seen = set(seqs)
    for a, b in _ranges([s for s in range(first, size) if s not in seen]):
        place = f"entry seq {a}" if a == b else f"entries seq {a}..{b}"
        if b == size - 1:
            verdict.fail(place, f"missing at the tail: final head #{final_no} signs {size} entries but the "
                         f"export stops at seq {a - 1} (truncated)")
        else:
            verdict.fail(place, f"missing (deleted): the entries jump from seq {a - 1} to seq {b + 1}")


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
    """Rollback, rewrite and continuity checks against the auditor's previous head."""
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
    carried = header.get("previous_head")
    if not carried or carried.get("body", "").encode("utf-8") != previous.body:
        verdict.fail(name, "the export carries no consistency proof from it: export again with "
                     "--previous-head set to this head")
        return
    try:
        merkle.verify_consistency(prev["tree_size"], final["tree_size"],
                                  _b64list(header.get("previous_consistency")),
                                  heads.root_of(prev), chain.final_root)
    except (merkle.ProofError, ValueError) as exc:
        verdict.fail(name, f"the export's final head is not an extension of it: {exc} (log rewritten)")
