"""How false alerts grow with the watchlist: FPIR and TPIR at fixed thresholds vs size.

Each non-mated search meets every entry, so FPIR rises with the watchlist size
at a fixed threshold. Where the test split has fewer enrolled identities than a
size, the gallery is padded with embeddings of distractor identities (from the
other split, disjoint from every test probe); where a size is smaller, the first
identities in a fixed order are kept with their mated probes. Beside the measured
figures, an independence model extrapolates from the per-entry false match rate:
FPIR(N) ~ 1 - (1 - p)^N.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfr_tools.evaluate import figures, metrics
from lfr_tools.evaluate.metrics import SearchResults


@dataclass
class Probes:
    """Probe embeddings with their ok mask and identity indices."""

    vectors: np.ndarray
    ok: np.ndarray
    identity: np.ndarray


def search_probes(gallery: np.ndarray, gallery_id: np.ndarray, mated: Probes,
                  nonmated: Probes) -> SearchResults:
    """Search mated and non-mated probes against one gallery."""
    top_id, top = metrics.search(gallery, gallery_id, mated.vectors, mated.ok)
    _, ntop = metrics.search(gallery, gallery_id, nonmated.vectors, nonmated.ok)
    return SearchResults(top_id == mated.identity, top, mated.identity, ntop, nonmated.identity)


def entry_false_match_rate(gallery: np.ndarray, nonmated: Probes, threshold: float) -> float:
    """Share of (non-mated probe, gallery entry) pairs scoring >= threshold."""
    probes = nonmated.vectors[nonmated.ok]
    if probes.size == 0 or gallery.size == 0:
        return float("nan")
    return float(np.mean(probes @ gallery.T >= threshold))


def at_size(size: int, gallery: np.ndarray, gallery_id: np.ndarray, padding: np.ndarray,
            mated: Probes, nonmated: Probes, thresholds: dict[str, float]) -> dict:
    """Figures for a watchlist of ``size`` entries (cut or padded as described above)."""
    real_ids = np.unique(gallery_id)
    if size <= real_ids.size:
        keep_ids = real_ids[:size]
        keep = np.isin(gallery_id, keep_ids)
        g, gid, pad = gallery[keep], gallery_id[keep], 0
        m_keep = np.isin(mated.identity, keep_ids)
        mated = Probes(mated.vectors[m_keep], mated.ok[m_keep], mated.identity[m_keep])
    else:
        pad = min(size - gallery.shape[0], padding.shape[0])
        g = np.concatenate([gallery, padding[:pad]])
        gid = np.concatenate([gallery_id, -2 - np.arange(pad)])  # distinct ids, none a probe's
    results = search_probes(g, gid, mated, nonmated)
    return {"requested": size, "entries": int(g.shape[0]), "real_identities": int(min(size, real_ids.size)),
            "padding_entries": int(pad), "reached": bool(g.shape[0] >= size),
            "rank1": metrics.rank1(results),
            "at_threshold": {k: figures.at_threshold(results, t) for k, t in thresholds.items()},
            "entry_false_match_rate": {k: entry_false_match_rate(g, nonmated, t)
                                       for k, t in thresholds.items()}}


def predicted_fpir(rate: float, size: int) -> float:
    """FPIR of a watchlist of ``size`` entries if false matches were independent per entry."""
    return float(1.0 - (1.0 - rate) ** size)


def fpir_vs_size(sizes: list[int], gallery: np.ndarray, gallery_id: np.ndarray, padding: np.ndarray,
                 mated: Probes, nonmated: Probes, thresholds: dict[str, float]) -> dict:
    """Measured and extrapolated FPIR for each requested watchlist size."""
    thresholds = {k: t for k, t in thresholds.items() if t is not None}
    rows = [at_size(n, gallery, gallery_id, padding, mated, nonmated, thresholds) for n in sizes]
    largest = max(rows, key=lambda r: r["entries"])
    for row in rows:
        row["predicted_fpir_independent"] = {
            k: predicted_fpir(largest["entry_false_match_rate"][k], row["requested"]) for k in thresholds}
    return {"padding_source": "embeddings of the calibration split's images (identities disjoint from "
                              "every test probe), in a fixed order",
            "padding_available": int(padding.shape[0]), "rows": rows}
