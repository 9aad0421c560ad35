"""`appliance audit export`: one self-contained JSON Lines file an auditor verifies offline.

Layout (documented in docs/audit.md, read by verify.py):

1. header: format, version, unit, log id, unit public key, first seq, entry count,
   final head number, the auditor's previous head and a consistency proof to it;
2. one line per tree head from the last head at or before the first exported entry
   to the final head, each with a consistency proof from its size to the final size;
3. one line per entry: the exact entry bytes (text) and its inclusion proof in the
   final head's tree;
4. an end line with the counts (so a file cut short is noticed at once).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import __version__
from ..clock import utc_text
from ..errors import AuditError, InputError
from . import heads
from .log import AuditLog, connect, iter_entries, load_heads, read_meta
from .merkle import TreeLevels, leaf_hash
from .verify import EXPORT_FORMAT, EXPORT_VERSION, load_head_file


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def sign_export_head(db_path: Path, key: Ed25519PrivateKey, unit_id: str) -> None:
    """Cover every committed entry by a signed head (reason "export") before exporting."""
    log = AuditLog.open(db_path, key, unit_id, recover=False)
    try:
        if log.status()["uncovered"]:
            log.sign_head("export")
    finally:
        log.close(final_head=None)


def _pick_final(all_heads: list[heads.TreeHead], until: str | None) -> heads.TreeHead:
    chosen = [h for h in all_heads if until is None or h.fields["time"] <= until]
    if not chosen:
        raise InputError(f"no signed tree head at or before {until}", fix="choose a later --until")
    return chosen[-1]


def _first_seq(db, since: str | None, previous: heads.TreeHead | None, hi: int) -> int:
    if since is not None:
        row = db.execute("SELECT MIN(seq) FROM entries WHERE time >= ?", [since]).fetchone()
        return hi if row[0] is None else min(row[0], hi)
    return previous.fields["tree_size"] if previous is not None else 0


def _check_previous(previous: heads.TreeHead, public, final: dict) -> dict:
    try:
        fields = heads.verify_head(previous, public)
    except heads.HeadError as exc:
        raise InputError(f"--previous-head is not a head of this log: {exc}",
                         fix="pass the head (or export file) from this unit's previous export") from None
    if fields["tree_size"] > final["tree_size"]:
        raise AuditError(f"--previous-head #{fields['head_no']} covers {fields['tree_size']} entries, more "
                         f"than the log's final head #{final['head_no']} ({final['tree_size']})",
                         fix="the log has been rolled back: keep the unit and both files for the auditors")
    return fields


def export_log(db_path: Path, out: Path, *, since: str | None = None, until: str | None = None,
               previous_head: Path | None = None) -> dict:
    """Write the export file ``out`` from the log at ``db_path``; return a summary."""
    db = connect(Path(db_path), readonly=True)
    try:
        meta = read_meta(db)
        public = heads.load_public_key(meta["public_key"])
        final = _pick_final(load_heads(db), until)
        final_fields = final.fields
        previous = load_head_file(Path(previous_head)) if previous_head else None
        prev_fields = _check_previous(previous, public, final_fields) if previous else None
        hi = final_fields["tree_size"]
        lo = _first_seq(db, since, previous, hi)
        # leaf hashes recomputed from the stored bytes: an edited row cannot hide behind its old hash
        tree = TreeLevels([leaf_hash(body) for _s, body, _leaf in iter_entries(db, 0, hi)])
        if tree.size != hi or tree.root() != heads.root_of(final_fields):
            raise AuditError(f"{db_path}: stored entries do not match signed head #{final_fields['head_no']}",
                             fix="the database was altered or is damaged: keep it for the auditors")
        included = [h for h in load_heads(db) if h.fields["head_no"] <= final_fields["head_no"]]
        base_no = max([h.fields["head_no"] for h in included if h.fields["tree_size"] <= lo] or [0])
        included = [h for h in included if h.fields["head_no"] >= base_no]
        header = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "tool": f"appliance {__version__}",
                  "exported_at": utc_text(), "unit": meta["unit"], "log_id": meta["log_id"],
                  "public_key": meta["public_key"], "key_fingerprint": heads.fingerprint(public),
                  "first_seq": lo, "entry_count": hi - lo, "final_head_no": final_fields["head_no"],
                  "since": since, "until": until,
                  "previous_head": previous.to_json() if previous else None,
                  "previous_consistency": _b64(tree.consistency_proof(prev_fields["tree_size"]))
                  if prev_fields and prev_fields["tree_size"] > 0 else None}
        _write(Path(out), header, included, tree, iter_entries(db, lo, hi))
    finally:
        db.conn.close()
    return {"out": str(out), "unit": meta["unit"], "first_seq": lo, "entries": hi - lo,
            "heads": len(included), "final_head_no": final_fields["head_no"], "tree_size": hi,
            "root": final_fields["root"]}


def _write(out: Path, header: dict, included: list[heads.TreeHead], tree: TreeLevels, entries) -> None:
    tmp = out.with_name(out.name + ".partial")
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header, sort_keys=True) + "\n")
        for head in included:
            proof = tree.consistency_proof(head.fields["tree_size"])
            fh.write(json.dumps({"head": head.to_json(), "consistency": _b64(proof)}) + "\n")
        for seq, body, _leaf in entries:
            fh.write(json.dumps({"entry": body.decode("utf-8"),
                                 "proof": _b64(tree.inclusion_proof(seq))}, ensure_ascii=False) + "\n")
            count += 1
        fh.write(json.dumps({"end": {"entries": count, "heads": len(included)}}) + "\n")
    tmp.replace(out)
