"""Open-set identification metrics (numpy only), in NIST FRVT 1:N terms.

A *search* is one probe compared with every gallery identity. A mated search's
probe has an identity in the gallery; a non-mated search's does not.
- TPIR(T): share of mated searches whose mate is at rank 1 with score >= T.
- FPIR(T): share of non-mated searches whose top score is >= T.
- A failure to acquire (no face found) counts as a miss in a mated search and
  as no alert in a non-mated one; both stay in the denominators.
The threshold for a target FPIR f is the lowest T with FPIR(T) <= f, and is
only reported where there are at least ceil(1/f) non-mated searches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NO_SCORE = -np.inf  # the top score of a search whose probe failed to acquire


@dataclass
class SearchResults:
    """Top-1 outcomes of mated and non-mated searches against one gallery."""

    mated_hit: np.ndarray       # bool: the top-1 identity is the mate
    mated_top: np.ndarray       # float: top-1 score (NO_SCORE on failure to acquire)
    mated_identity: np.ndarray  # int: identity index of each mated probe (for resampling)
    nonmated_top: np.ndarray    # float: top-1 score of each non-mated search
    nonmated_identity: np.ndarray

    @property
    def n_mated(self) -> int:
        """Number of mated searches."""
        return int(self.mated_top.size)

    @property
    def n_nonmated(self) -> int:
        """Number of non-mated searches."""
        return int(self.nonmated_top.size)

    def subset(self, mated: np.ndarray, nonmated: np.ndarray) -> "SearchResults":
        """The searches selected by two index (or mask) arrays."""
        return SearchResults(self.mated_hit[mated], self.mated_top[mated],
                             self.mated_identity[mated], self.nonmated_top[nonmated],
                             self.nonmated_identity[nonmated])


def per_identity_max(scores: np.ndarray, entry_identity: np.ndarray, n_identities: int) -> np.ndarray:
    """Collapse (probes x entries) scores to (probes x identities) by the best entry of each."""
    out = np.full((scores.shape[0], n_identities), NO_SCORE, dtype=np.float32)
    for ident in np.unique(entry_identity):
        out[:, ident] = scores[:, entry_identity == ident].max(axis=1)
    return out


def search(gallery: np.ndarray, gallery_identity: np.ndarray, probes: np.ndarray,
           probe_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 identity and cosine score of each probe; failed probes get (-1, NO_SCORE).

    ``gallery_identity`` gives each gallery row's identity; an identity with several
    rows scores by its best row.
    """
    top_id = np.full(probes.shape[0], -1, dtype=np.int64)
    top_score = np.full(probes.shape[0], NO_SCORE, dtype=np.float64)
    ok = np.flatnonzero(probe_ok)
    if ok.size == 0 or gallery.shape[0] == 0:
        return top_id, top_score
    scores = probes[ok].astype(np.float32) @ gallery.astype(np.float32).T
    if np.unique(gallery_identity).size != gallery_identity.size:
        ids, inverse = np.unique(gallery_identity, return_inverse=True)
        scores = per_identity_max(scores, inverse, ids.size)
        best = scores.argmax(axis=1)
        top_id[ok] = ids[best]
    else:
        best = scores.argmax(axis=1)
        top_id[ok] = gallery_identity[best]
    top_score[ok] = scores[np.arange(ok.size), best]
    return top_id, top_score


def min_nonmated_for(fpir: float) -> int:
    """Fewest non-mated searches that can support a threshold at ``fpir``."""
    return math.ceil(1.0 / fpir - 1e-9)


def threshold_at_fpir(nonmated_top: np.ndarray, fpir: float) -> float | None:
    """Lowest threshold whose FPIR is <= ``fpir``; None when too few non-mated searches."""
    n = nonmated_top.size
    if n < min_nonmated_for(fpir):
        return None
    allowed = int(math.floor(fpir * n + 1e-9))  # false alerts allowed at this FPIR
    ordered = np.sort(nonmated_top)[::-1]
    if allowed >= n:
        return float(ordered[-1])
    # Scores >= T alert; put T just above the (allowed+1)-th highest non-mated score.
    # Ties above it could push FPIR over the target, so step past them too.
    pivot = ordered[allowed]
    if not np.isfinite(pivot):
        return float(np.nextafter(np.float64(-1.0), -np.inf))
    return float(np.nextafter(np.float64(pivot), np.inf))


def tpir_at(results: SearchResults, threshold: float) -> float:
    """Share of mated searches with the mate at rank 1 and score >= threshold."""
    if results.n_mated == 0:
        return float("nan")
    return float(np.mean(results.mated_hit & (results.mated_top >= threshold)))


def fpir_at(nonmated_top: np.ndarray, threshold: float) -> float:
    """Share of non-mated searches whose top score is >= threshold."""
    if nonmated_top.size == 0:
        return float("nan")
    return float(np.mean(nonmated_top >= threshold))


def rank1(results: SearchResults) -> float:
    """Closed-set rank-1 rate of the mated searches (no threshold; failures count as misses)."""
    return float(np.mean(results.mated_hit)) if results.n_mated else float("nan")


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95% by default) for a binomial proportion."""
    if trials == 0:
        return (float("nan"), float("nan"))
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


class IdentityResampler:
    """Bootstrap resamples that draw whole identities (with all their searches) with replacement."""

    def __init__(self, identity: np.ndarray) -> None:
        _, inverse = np.unique(identity, return_inverse=True)
        self._order = np.argsort(inverse, kind="stable")
        self._counts = np.bincount(inverse)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Indices of one resample."""
        n = self._counts.size
        if n == 0:
            return self._order
        drawn = rng.integers(0, n, n)
        lengths = self._counts[drawn]
        out_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        offsets = np.repeat(self._starts[drawn] - out_starts, lengths)
        return self._order[np.arange(int(lengths.sum())) + offsets]


def bootstrap_tpir_ci(results: SearchResults, fpir: float, reps: int = 500,
                      seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile CI of TPIR at ``fpir``, resampling mated and non-mated identities.

    Both sides are redrawn, so the interval carries the threshold's own uncertainty.
    """
    if threshold_at_fpir(results.nonmated_top, fpir) is None or results.n_mated == 0:
        return None
    rng = np.random.default_rng(seed)
    mated, nonmated = IdentityResampler(results.mated_identity), IdentityResampler(results.nonmated_identity)
    values = []
    for _ in range(reps):
        m, n = mated.draw(rng), nonmated.draw(rng)
        t = threshold_at_fpir(results.nonmated_top[n], fpir)
        if t is not None:
            values.append(tpir_at(results.subset(m, n), t))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return (float(lo), float(hi))


def det_curve(results: SearchResults, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) pairs over thresholds spanning the non-mated scores, for a DET plot."""
    finite = results.nonmated_top[np.isfinite(results.nonmated_top)]
    if finite.size == 0:
        return np.zeros(0), np.zeros(0)
    thresholds = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, points)))
    thresholds = np.concatenate([thresholds, [np.nextafter(finite.max(), np.inf)]])
    fpir = np.array([fpir_at(results.nonmated_top, t) for t in thresholds])
    fnir = np.array([1.0 - tpir_at(results, t) for t in thresholds])
    return fpir, fnir


def fpir_key(fpir: float) -> str:
    """The JSON key of an FPIR target: "0.01", "0.001", "0.000167" (1/6000)."""
    return f"{fpir:.6f}".rstrip("0").rstrip(".") if fpir >= 1e-6 else f"{fpir:g}"
