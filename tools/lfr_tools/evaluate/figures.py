"""The figures of an accuracy card, computed from search results (numpy only)."""
from __future__ import annotations

import numpy as np

from lfr_tools.evaluate import metrics
from lfr_tools.evaluate.metrics import SearchResults

DEFAULT_FPIRS = (1e-2, 1e-3, 1 / 6000)


def _rate(k: int, n: int) -> dict:
    lo, hi = metrics.wilson(k, n)
    return {"value": k / n if n else None, "count": k, "of": n, "ci95_wilson": [lo, hi]}


def fta(ok: np.ndarray) -> dict:
    """Failure-to-acquire rate (no face found) with its Wilson interval."""
    return _rate(int((~ok).sum()), int(ok.size))


def at_fpir(results: SearchResults, fpir: float, reps: int) -> dict:
    """Threshold, TPIR and its bootstrap CI at one FPIR target, or why it is not reported."""
    t = metrics.threshold_at_fpir(results.nonmated_top, fpir)
    if t is None:
        need = metrics.min_nonmated_for(fpir)
        return {"fpir": fpir, "threshold": None, "tpir": None, "ci95": None,
                "not_reported": f"needs at least {need} non-mated searches, "
                                f"have {results.n_nonmated}"}
    ci = metrics.bootstrap_tpir_ci(results, fpir, reps=reps)
    return {"fpir": fpir, "threshold": t, "tpir": metrics.tpir_at(results, t),
            "realised_fpir": metrics.fpir_at(results.nonmated_top, t), "ci95": list(ci) if ci else None}


def at_threshold(results: SearchResults, threshold: float) -> dict:
    """TPIR and FPIR (Wilson CIs) at a threshold fixed elsewhere (e.g. on calibration)."""
    hits = int((results.mated_hit & (results.mated_top >= threshold)).sum())
    false = int((results.nonmated_top >= threshold).sum())
    return {"threshold": threshold, "tpir": _rate(hits, results.n_mated),
            "fpir": _rate(false, results.n_nonmated)}


def summarise(results: SearchResults, fpirs=DEFAULT_FPIRS, calibrated: dict | None = None,
              reps: int = 500) -> dict:
    """Every headline figure for one set of searches.

    ``calibrated`` maps FPIR keys to thresholds set on another split; the realised
    TPIR and FPIR at those thresholds are reported beside the set's own.
    """
    table = {metrics.fpir_key(f): at_fpir(results, f, reps) for f in fpirs}
    out = {"searches": {"mated": results.n_mated, "nonmated": results.n_nonmated},
           "rank1": metrics.rank1(results), "at_fpir": table,
           "tpir_at_fpir": {k: v["tpir"] for k, v in table.items()}}
    if calibrated:
        out["at_calibrated_threshold"] = {k: at_threshold(results, t)
                                          for k, t in calibrated.items() if t is not None}
    return out


def per_group(results: SearchResults, identity_names: list[str], groups: dict[str, str],
              thresholds: dict[str, float]) -> dict:
    """TPIR and FPIR per demographic group at the overall thresholds (G9).

    Differentials are shown at one fixed threshold, as an operator would run it.
    """
    names = np.array(identity_names, dtype=object)
    mated_group = np.array([groups.get(n) for n in names[results.mated_identity]], dtype=object)
    nonmated_group = np.array([groups.get(n) for n in names[results.nonmated_identity]], dtype=object)
    labels = sorted({g for g in groups.values()})
    rows = {}
    for label in labels:
        sub = results.subset(mated_group == label, nonmated_group == label)
        rows[label] = {"mated": sub.n_mated, "nonmated": sub.n_nonmated,
                       "rank1": metrics.rank1(sub) if sub.n_mated else None,
                       "at_threshold": {k: at_threshold(sub, t) for k, t in thresholds.items()
                                        if t is not None}}
    rows["(no group)"] = {"mated": int(sum(g is None for g in mated_group)),
                          "nonmated": int(sum(g is None for g in nonmated_group))}
    return rows
