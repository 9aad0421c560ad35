"""RFC 6962 / RFC 9162 Merkle tree: hashing, inclusion and consistency proofs.

Self-contained on purpose (standard library only): the auditor's verifier
imports this file on a laptop that has Python and nothing of the appliance.

Hashing: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
the empty tree's root is SHA-256(""). Proof checking follows the algorithms of
transparency-dev/merkle (proof/verify.go), so its published test vectors apply.

Two views of one tree:
- :class:`CompactRange` keeps only the O(log n) right frontier, so a tree over a
  stream of leaves (the log as it grows, an export as it is read) costs O(n)
  time and O(log n) memory, and gives the root at any size along the way.
- :class:`TreeLevels` keeps every level (n + n/2 + ... hashes) to produce
  inclusion proofs for all leaves and consistency proofs in O(log n) each.
"""
from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A Merkle proof is malformed or does not lead to the expected root."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The right frontier of a growing tree: append leaf hashes, ask for the root.

    ``_nodes[i]`` is the root of a perfect subtree; sizes follow the set bits of
    ``size`` from the most significant down, as in RFC 9162 section 2.1.
    """

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (already hashed with :func:`leaf_hash`)."""
        node = leaf
        size = self.size
        nodes = self._nodes
        while size & 1:
            node = hashlib.sha256(b"\x01" + nodes.pop() + node).digest()
            size >>= 1
        nodes.append(node)
        self.size += 1

    def copy(self) -> "CompactRange":
        """An independent copy (to compute a root before the leaf is committed)."""
        other = CompactRange()
        other.size, other._nodes = self.size, list(self._nodes)
        return other

    def root(self) -> bytes:
        """Root hash of the tree over every leaf appended so far."""
        if not self._nodes:
            return EMPTY_ROOT
        node = self._nodes[-1]
        for left in reversed(self._nodes[:-1]):
            node = node_hash(left, node)
        return node


def root_of(leaves: list[bytes]) -> bytes:
    """Root hash of the tree over ``leaves`` (leaf hashes), in O(n)."""
    rng = CompactRange()
    for leaf in leaves:
        rng.append(leaf)
    return rng.root()


class TreeLevels:
    """Every level of the tree over ``leaves``; an odd last node is carried up unchanged.

    Carrying the odd node up gives exactly RFC 6962's tree (split at the largest
    power of two below n), so sibling lookups give the audit paths.
    """

    def __init__(self, leaves: list[bytes]) -> None:
        self.size = len(leaves)
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
                   for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    def root(self) -> bytes:
        """Root hash of the whole tree."""
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the whole tree (RFC 6962 PATH)."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf {index} is outside a tree of size {self.size}")
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index >>= 1
        return proof

    def subtree_root(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for any range the RFC 6962 recursion visits."""
        width = hi - lo
        if width & (width - 1) == 0 and lo % width == 0:
            return self.levels[width.bit_length() - 1][lo // width]
        split = 1 << ((width - 1).bit_length() - 1)
        return node_hash(self.subtree_root(lo, lo + split), self.subtree_root(lo + split, hi))

    def consistency_proof(self, size1: int) -> list[bytes]:
        """Proof that the tree of size ``size1`` is a prefix of this tree (RFC 6962 PROOF)."""
        if not 0 <= size1 <= self.size:
            raise ProofError(f"size {size1} is outside a tree of size {self.size}")
        if size1 in (0, self.size):
            return []
        return self._subproof(size1, 0, self.size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.subtree_root(lo, hi)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return self._subproof(m, lo, lo + k, complete) + [self.subtree_root(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.subtree_root(lo, lo + k)]


def _inner_proof_size(index: int, size: int) -> int:
    return (index ^ (size - 1)).bit_length()


def _decomp(index: int, size: int) -> tuple[int, int]:
    inner = _inner_proof_size(index, size)
    return inner, bin(index >> inner).count("1")


def _chain_inner(seed: bytes, proof: list[bytes], index: int) -> bytes:
    sha256 = hashlib.sha256  # the verifier's hot loop: one call per proof hash
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = sha256(b"\x01" + sibling + seed).digest()
        else:
            seed = sha256(b"\x01" + seed + sibling).digest()
    return seed


def _chain_inner_right(seed: bytes, proof: list[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: list[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def _match(calculated: bytes, expected: bytes, what: str) -> None:
    if calculated != expected:
        raise ProofError(f"{what}: calculated root {calculated.hex()[:16]}... "
                         f"differs from expected {expected.hex()[:16]}...")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """The root that ``proof`` leads to from leaf hash ``leaf`` at ``index`` of ``size``."""
    if index >= size or index < 0:
        raise ProofError(f"leaf index {index} is beyond tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
    inner, border = _decomp(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, want {inner + border}")
    node = _chain_inner(leaf, proof[:inner], index)
    return _chain_border_right(node, proof[inner:])


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root``."""
    _match(root_from_inclusion_proof(index, size, leaf, proof), root, "inclusion proof")


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> None:
    """Raise ProofError unless ``proof`` shows tree (size1, root1) is a prefix of (size2, root2)."""
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == 0:
        # As in the transparency-dev vectors: a proof from the empty tree proves nothing.
        raise ProofError("consistency from an empty tree (size1 = 0) proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("size1 = size2 but the proof is not empty")
        _match(root1, root2, "consistency (equal sizes)")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    inner, border = _decomp(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    seed, start = proof[0], 1
    if size1 == 1 << shift:
        seed, start = root1, 0
    if len(proof) != start + inner + border:
        raise ProofError(f"consistency proof has {len(proof)} hashes, want {start + inner + border}")
    proof = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, proof[:inner], mask), proof[inner:])
    _match(hash1, root1, "consistency proof (old root)")
    hash2 = _chain_border_right(_chain_inner(seed, proof[:inner], mask), proof[inner:])
    _match(hash2, root2, "consistency proof (new root)")
