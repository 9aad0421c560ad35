"""The list-size rule of an accuracy card: p(T) from impostor pairs, its tail, thresholds per size.

p(T), the per-entry false match rate, is the share of impostor pairs (two images of
different calibration-split identities, each pair once) scoring >= T. It is measured
where at least ``MIN_PAIRS`` pairs exceed T; beyond that, log10 p(T) is extended as
the straight line fitted to the measured tail (p from 1e-3 down to the last measured
point), i.e. an exponential tail. Cosine impostor scores fall off faster than
exponentially (about Gaussian), so the extension over-states p and the thresholds it
gives err high (fewer false alerts than the target, a few more misses).

The expected FPIR of a list of N entries, 1 - (1 - p(T))^N, treats entries as
independent; on lfw-dev it over-predicted the measured FPIR at 1,000 and ~3,000
entries, again erring high. The rule is checked against the FPIR measured on the
test split at the thresholds it gives (``validation``).
"""
from __future__ import annotations

import numpy as np

from appliance.thresholds import TARGET_FPIR, ListSizeRule
from lfr_tools.evaluate import scaling

GRID = np.round(np.arange(0.20, 1.0 + 1e-9, 0.0025), 4)
MIN_PAIRS = 20          # measured p(T) needs at least this many pairs above T
TAIL_FROM_P = 1e-3      # the straight-line fit uses measured points below this p
SIZES = (100, 1000, 10000)
FLOOR_LIST_SIZE = 100
CHUNK = 1024


def impostor_counts(vectors: np.ndarray, identity: np.ndarray, grid: np.ndarray = GRID) -> tuple[np.ndarray, int]:
    """For each grid threshold, how many impostor pairs score >= it; and the number of pairs."""
    counts = np.zeros(grid.size, np.int64)
    total = 0
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start:start + CHUNK] @ vectors.T
        rows = np.arange(start, min(start + CHUNK, len(vectors)))
        keep = (identity[rows][:, None] != identity[None, :]) & (np.arange(len(vectors))[None, :] > rows[:, None])
        scores = np.sort(block[keep])
        total += scores.size
        counts += scores.size - np.searchsorted(scores, grid, side="left")
    return counts, total


def tail_fit(grid: np.ndarray, counts: np.ndarray, total: int) -> tuple[np.ndarray, dict]:
    """log10 p(T) on the grid: measured where counts >= MIN_PAIRS, a fitted straight line beyond."""
    p = counts / max(total, 1)
    measured = counts >= MIN_PAIRS
    last = int(np.flatnonzero(measured).max())
    fit = measured & (p <= TAIL_FROM_P)
    if fit.sum() < 3:  # too few tail points: fit the last few measured ones
        fit = measured & (np.arange(grid.size) > last - 5)
    slope, intercept = np.polyfit(grid[fit], np.log10(p[fit]), 1)
    log_p = np.where(measured, np.log10(np.maximum(p, 1e-300)), intercept + slope * grid)
    log_p = np.minimum.accumulate(log_p)  # p(T) never rises with T
    info = {"impostor_pairs": int(total), "measured_up_to": float(grid[last]),
            "fit_from": float(grid[fit].min()), "fit_to": float(grid[fit].max()),
            "log10_slope_per_unit_threshold": float(slope), "log10_intercept": float(intercept)}
    return log_p, info


def build_rule(model_id: str, vectors: np.ndarray, identity: np.ndarray) -> tuple[ListSizeRule, dict]:
    """The list-size rule from calibration-split embeddings (ok rows only) and their identities."""
    counts, total = impostor_counts(vectors.astype(np.float32), identity)
    log_p, info = tail_fit(GRID, counts, total)
    rule = ListSizeRule(model_id, GRID.astype(np.float64), log_p, TARGET_FPIR, FLOOR_LIST_SIZE)
    return rule, info


def validation(rule: ListSizeRule, gallery: np.ndarray, gallery_id: np.ndarray, padding: np.ndarray,
               mated: scaling.Probes, nonmated: scaling.Probes) -> list[dict]:
    """FPIR and TPIR measured on the test split at the rule's threshold for each size (padded)."""
    rows = []
    for size in SIZES:
        t = rule.threshold_for(size)
        row = scaling.at_size(size, gallery, gallery_id, padding, mated, nonmated, {"rule": t})
        cal = row["at_threshold"]["rule"]
        rows.append({"list_size": size, "threshold": t, "entries_measured": row["entries"],
                     "expected_fpir": rule.expected_fpir(t, size),
                     "expected_fpir_at_entries_measured": rule.expected_fpir(t, row["entries"]),
                     "measured_fpir": cal["fpir"]["value"], "measured_fpir_ci95": cal["fpir"]["ci95_wilson"],
                     "measured_tpir": cal["tpir"]["value"]})
    return rows


def card_section(rule: ListSizeRule, info: dict, checks: list[dict]) -> dict:
    """The card's ``list_size_rule``: method, curve, thresholds per size, floor, validation."""
    return {"target_fpir": rule.target_fpir, "floor_list_size": rule.floor_list_size,
            "floor": rule.floor, "thresholds": {str(n): rule.threshold_for(n) for n in SIZES},
            "expected_fpir_at_floor": {str(n): rule.expected_fpir(rule.floor, n) for n in SIZES},
            "method": "FPIR(T, N) = 1 - (1 - p(T))^N; p(T) = share of calibration-split impostor pairs "
                      f"scoring >= T, measured where >= {MIN_PAIRS} pairs exceed T, beyond that log10 p(T) "
                      f"extended as the straight line fitted to the measured tail (p <= {TAIL_FROM_P:g})",
            "tail": info, "validation_test_split": checks,
            "curve": {"threshold": [float(t) for t in rule.thresholds],
                      "log10_entry_fmr": [round(float(v), 4) for v in rule.log10_entry_fmr]}}

