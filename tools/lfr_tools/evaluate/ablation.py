"""The accuracy ablation: each pipeline step on and off, on the eval protocol's test split.

Embeddings come from :mod:`lfr_tools.evaluate.ablation_embed` (each image detected
once, every alignment variant embedded plain and flipped). For each variant the
calibration split sets the thresholds and the test split gives TPIR at FPIR 1e-2
and 1e-3 with 95% bootstrap intervals, rank-1, and the TPIR and FPIR realised at the
calibration thresholds, as `appliance eval` reports them. Score rules (top-1/top-2
margin, cohort normalisation against the list) and multi-photo templates are
evaluated on the same cached vectors.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lfr_tools.evaluate import figures, metrics, protocol
from lfr_tools.evaluate.ablation_embed import AblationEmbeddings
from lfr_tools.evaluate.metrics import NO_SCORE, SearchResults

FPIRS = (1e-2, 1e-3)


@dataclass
class Gallery:
    """Enrolled rows (one per identity after templating) and their identity indices."""

    vectors: np.ndarray
    identity: np.ndarray


@dataclass
class Searches:
    """Per probe: the score against every enrolled identity (NO_SCORE rows for no face)."""

    scores: np.ndarray       # (probes, identities)
    identity: np.ndarray     # probe identity index
    ok: np.ndarray
    gallery_identity: np.ndarray


Rule = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # scores -> (best column, decision score)


def top1(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain rule: the best identity and its cosine score."""
    best = scores.argmax(axis=1)
    return best, scores[np.arange(len(scores)), best]


def margin_rule(weight: float) -> Rule:
    """Decision score s1 - weight * s2 (s2: the runner-up identity's score)."""
    def rule(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        part = np.partition(scores, -2, axis=1)
        best = scores.argmax(axis=1)
        return best, part[:, -1] - weight * part[:, -2]
    return rule


def cohort_rule(k: int) -> Rule:
    """Decision score (s1 - mean) / std of the probe's k next-best identities (probe-side T-norm)."""
    def rule(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        part = -np.sort(-scores, axis=1)[:, :k + 1]
        cohort = part[:, 1:]
        best = scores.argmax(axis=1)
        return best, (part[:, 0] - cohort.mean(axis=1)) / np.maximum(cohort.std(axis=1), 1e-6)
    return rule


def template(vectors: np.ndarray, identity: np.ndarray, mode: str) -> Gallery:
    """One row per identity: ``mean`` (normalised mean of its photos), ``first`` (its first
    photo only) or ``rows`` (every photo a row, the identity scoring by its best row)."""
    if mode == "rows":
        return Gallery(vectors, identity)
    ids = np.unique(identity)
    rows = []
    for i in ids:
        own = vectors[identity == i]
        rows.append(own[0] if mode == "first" else own.mean(axis=0))
    rows = np.stack(rows)
    return Gallery((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), ids)


def score_matrix(gallery: Gallery, probes: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probes x identities) best-row scores and the identity of each column."""
    ids, inverse = np.unique(gallery.identity, return_inverse=True)
    raw = probes @ gallery.vectors.T
    scores = metrics.per_identity_max(raw, inverse, ids.size) if ids.size != len(inverse) else raw
    scores = scores.astype(np.float64)
    scores[~ok] = NO_SCORE
    return scores, ids


def results(gallery: Gallery, mated: tuple, nonmated: tuple, rule: Rule) -> SearchResults:
    """SearchResults of mated and non-mated probes (vectors, ok, identity) under a score rule."""
    out = []
    for vectors, ok, identity in (mated, nonmated):
        scores, ids = score_matrix(gallery, vectors, ok)
        best, decision = rule(scores) if len(scores) else (np.zeros(0, int), np.zeros(0))
        decision = np.where(ok, decision, NO_SCORE)
        out.append((ids[best] == identity, decision, identity))
    (hit, m_top, m_id), (_, n_top, n_id) = out
    return SearchResults(hit & np.isfinite(m_top), m_top, m_id, n_top, n_id)


def split_arrays(split: protocol.Split, emb: AblationEmbeddings, table: dict[str, np.ndarray],
                 rows: dict[str, int]) -> tuple[tuple, tuple, tuple]:
    """(gallery, mated, nonmated) as (vectors, ok, identity index) from a variant's vectors."""
    names = {n: i for i, n in enumerate(split.identities)}

    def part(items):
        idx = np.array([rows[str(p)] for _, p in items], np.int64)
        return table[idx], emb.detected[idx], np.array([names[i] for i, _ in items], np.int64)
    return part(split.gallery), part(split.mated), part(split.nonmated)


def evaluate(splits: dict[str, protocol.Split], emb: AblationEmbeddings, vectors: np.ndarray,
             rule: Rule = top1, gallery_mode: str = "first", reps: int = 500) -> dict:
    """Calibration thresholds, then the test split's figures, for one variant."""
    rows = emb.index()
    out = {}
    for name in ("calibration", "test"):
        g, m, n = split_arrays(splits[name], emb, vectors, rows)
        gallery = template(g[0][g[1]], g[2][g[1]], gallery_mode)
        out[name] = results(gallery, m, n, rule)
    calib = {metrics.fpir_key(f): metrics.threshold_at_fpir(out["calibration"].nonmated_top, f) for f in FPIRS}
    summary = figures.summarise(out["test"], FPIRS, calib, reps)
    summary["calibration_thresholds"] = calib
    summary["calibration_tpir_at_fpir"] = {k: metrics.tpir_at(out["calibration"], t) for k, t in calib.items()}
    return summary
