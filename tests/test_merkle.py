"""RFC 6962 Merkle tree: published vectors, and proofs checked against the RFC's recursion."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.audit import merkle

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VECTORS = SHARED / "vectors" / "rfc6962"


def _b64(value):
    return base64.b64decode(value) if value is not None else b""


def _check_vector(path: Path, case: dict) -> None:
    proof = [_b64(p) for p in (case["proof"] or [])]
    if "leafIdx" in case:
        merkle.verify_inclusion(case["leafIdx"], case["treeSize"], _b64(case["leafHash"]),
                                proof, _b64(case["root"]))
    else:
        merkle.verify_consistency(case["size1"], case["size2"], proof,
                                  _b64(case["root1"]), _b64(case["root2"]))


def test_every_rfc6962_vector():
    """Each happy path verifies and each wantErr case is rejected, over every vector file."""
    if not VECTORS.is_dir():
        pytest.skip("../shared/vectors/rfc6962 absent: clone shared/ beside the repo to run the vectors")
    files = sorted(VECTORS.rglob("*.json"))
    assert len(files) >= 190, f"expected the full vector set, found {len(files)} files"
    kinds = {"inclusion": [0, 0], "consistency": [0, 0]}
    wrong = []
    for path in files:
        case = json.loads(path.read_text())
        kind = "inclusion" if "leafIdx" in case else "consistency"
        try:
            _check_vector(path, case)
            accepted = True
        except merkle.ProofError:
            accepted = False
        if accepted == case["wantErr"]:
            wrong.append(f"{path.relative_to(VECTORS)}: wantErr={case['wantErr']} accepted={accepted}")
        kinds[kind][int(case["wantErr"])] += 1
    assert not wrong, "\n".join(wrong)
    for kind, (happy, bad) in kinds.items():
        assert happy > 0 and bad > 0, f"{kind}: {happy} happy paths, {bad} error cases"


# --- the RFC 6962 section 2.1 recursion, written naively, as the reference ---

def _ref_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_ref_mth(leaves[:k]), _ref_mth(leaves[k:]))


def _ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return _ref_path(m, leaves[:k]) + [_ref_mth(leaves[k:])]
    return _ref_path(m - k, leaves[k:]) + [_ref_mth(leaves[:k])]


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_roots_and_paths_match_the_rfc_recursion(n, data):
    leaves = _leaves(n)
    tree = merkle.TreeLevels(leaves)
    assert tree.root() == _ref_mth(leaves) == merkle.root_of(leaves)
    index = data.draw(st.integers(0, n - 1))
    proof = tree.inclusion_proof(index)
    assert proof == _ref_path(index, leaves)
    merkle.verify_inclusion(index, n, leaves[index], proof, tree.root())
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, n, merkle.leaf_hash(b"forged"), proof, tree.root())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_consistency_proofs_verify_and_catch_rewrites(n, data):
    leaves = _leaves(n)
    size1 = data.draw(st.integers(0, n))
    tree = merkle.TreeLevels(leaves)
    old_root = merkle.root_of(leaves[:size1])
    proof = tree.consistency_proof(size1)
    if size1 == 0:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, n, proof, old_root, tree.root())
        return
    merkle.verify_consistency(size1, n, proof, old_root, tree.root())
    if size1 < n:
        rewritten = merkle.root_of(leaves[:size1 - 1] + [merkle.leaf_hash(b"rewritten")])
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, n, proof, rewritten, tree.root())


def test_compact_range_gives_the_root_at_every_size():
    leaves = _leaves(70)
    rng = merkle.CompactRange()
    assert rng.root() == merkle.EMPTY_ROOT
    for i, leaf in enumerate(leaves):
        rng.append(leaf)
        assert rng.root() == _ref_mth(leaves[:i + 1])
