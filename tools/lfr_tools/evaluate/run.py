"""`appliance eval`: the whole open-set evaluation of one engine on one data set.

Calibration split: clean images only; it sets the thresholds (and so the floor).
Test split: every reported TPIR/FPIR, clean and under each degradation. Degradations
touch the probes only; the gallery stays the clean enrolment photos, as custody
photos would be.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfr_tools.evaluate import degrade, figures, listsize, metrics, protocol, report, scaling
from lfr_tools.evaluate.embedding import EmbeddingCache, ImageEmbedder, progress_bar
from lfr_tools.evaluate.metrics import SearchResults

DEFAULT_SIZES = (100, 1000, 10000)


@dataclass
class EvalOptions:
    """What to evaluate and how."""

    gallery_per_id: int = 1
    max_mated_per_id: int | None = protocol.MAX_MATED_PER_ID
    watchlist_sizes: tuple[int, ...] = DEFAULT_SIZES
    groups: dict[str, str] | None = None
    degradations: tuple[str, ...] = tuple(degrade.DEGRADATIONS)
    fpirs: tuple[float, ...] = figures.DEFAULT_FPIRS
    max_identities: int | None = None       # a deterministic subset, for quick runs and tests
    max_images_per_id: int | None = None
    bootstrap_reps: int = 500
    progress: bool = True
    extra: dict = field(default_factory=dict)  # recorded as-is in eval.json (e.g. backend)


@dataclass
class SplitEmbeddings:
    """A split's gallery and probe embeddings, with identity indices into ``names``."""

    names: list[str]
    gallery: np.ndarray
    gallery_ok: np.ndarray
    gallery_id: np.ndarray
    mated: scaling.Probes
    nonmated: scaling.Probes


def subset_table(table: dict[str, list[Path]], opts: EvalOptions) -> dict[str, list[Path]]:
    """The deterministic subset of identities/images the options ask for (all by default)."""
    names = sorted(table, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    if opts.max_identities:
        names = names[:opts.max_identities]
    cap = opts.max_images_per_id or None
    return {n: table[n][:cap] for n in sorted(names)}


def _index(items: list[tuple[str, Path]], names: dict[str, int]) -> np.ndarray:
    return np.array([names[i] for i, _ in items], np.int64)


def embed_split(cache: EmbeddingCache, split: protocol.Split, degradation: str = "clean") -> SplitEmbeddings:
    """Embed a split: clean gallery, probes under ``degradation``."""
    names = {n: i for i, n in enumerate(split.identities)}
    g, g_ok = cache.embed([p for _, p in split.gallery], "clean", f"{split.name} gallery")
    m, m_ok = cache.embed([p for _, p in split.mated], degradation, f"{split.name} mated {degradation}")
    n, n_ok = cache.embed([p for _, p in split.nonmated], degradation, f"{split.name} non-mated {degradation}")
    return SplitEmbeddings(split.identities, g, g_ok, _index(split.gallery, names),
                           scaling.Probes(m, m_ok, _index(split.mated, names)),
                           scaling.Probes(n, n_ok, _index(split.nonmated, names)))


def search_results(e: SplitEmbeddings) -> SearchResults:
    """Search every probe of a split against its gallery (failed enrolments left out)."""
    gallery, gallery_id = e.gallery[e.gallery_ok], e.gallery_id[e.gallery_ok]
    return scaling.search_probes(gallery, gallery_id, e.mated, e.nonmated)


def condition_figures(e: SplitEmbeddings, opts: EvalOptions, calibrated: dict | None) -> dict:
    """Headline figures plus failure-to-acquire for one split under one condition."""
    results = search_results(e)
    out = figures.summarise(results, opts.fpirs, calibrated, opts.bootstrap_reps)
    out["fta"] = {"gallery": figures.fta(e.gallery_ok), "mated": figures.fta(e.mated.ok),
                  "nonmated": figures.fta(e.nonmated.ok),
                  "probes": figures.fta(np.concatenate([e.mated.ok, e.nonmated.ok]))}
    out["_det"] = metrics.det_curve(results)
    out["_results"] = results
    return out


def run_eval(dataset: Path, out_dir: Path, engine: ImageEmbedder, opts: EvalOptions) -> dict:
    """Run the evaluation, write eval.json, det.png and card.md into out_dir; return the report."""
    started = time.perf_counter()
    table = subset_table(protocol.list_identities(dataset), opts)
    splits = protocol.build_splits(table, opts.gallery_per_id, max_mated_per_id=opts.max_mated_per_id)
    with progress_bar(opts.progress) as bar:
        cache = EmbeddingCache(engine, bar)
        calib = embed_split(cache, splits["calibration"])
        calib_fig = condition_figures(calib, opts, None)
        thresholds = {k: v["threshold"] for k, v in calib_fig["at_fpir"].items()}
        test = embed_split(cache, splits["test"])
        conditions = {"clean": condition_figures(test, opts, thresholds)}
        for name in opts.degradations:
            conditions[name] = condition_figures(embed_split(cache, splits["test"], name), opts, thresholds)
    padding = _padding(calib)
    size_table = scaling.fpir_vs_size(list(opts.watchlist_sizes), test.gallery[test.gallery_ok],
                                      test.gallery_id[test.gallery_ok], padding, test.mated,
                                      test.nonmated, thresholds)
    doc_rule = list_size_rule(engine.model_id, calib, test, padding)
    groups = (figures.per_group(conditions["clean"]["_results"], test.names, opts.groups, thresholds)
              if opts.groups else None)
    doc = report.build(dataset, engine.model_id, splits, opts, calib_fig, thresholds, conditions,
                       size_table, groups, elapsed=time.perf_counter() - started,
                       embeddings_computed=cache.computed, embed_seconds=cache.seconds)
    doc["list_size_rule"] = doc_rule
    report.write(out_dir, doc, conditions)
    return doc


def list_size_rule(model_id: str, calib: SplitEmbeddings, test: SplitEmbeddings, padding: np.ndarray) -> dict:
    """The card's list-size rule: p(T) from calibration impostor pairs, checked on the test split."""
    parts = [(calib.gallery, calib.gallery_ok, calib.gallery_id), (calib.mated.vectors, calib.mated.ok,
             calib.mated.identity), (calib.nonmated.vectors, calib.nonmated.ok, calib.nonmated.identity)]
    vectors = np.concatenate([v[ok] for v, ok, _ in parts])
    identity = np.concatenate([i[ok] for _, ok, i in parts])
    rule, info = listsize.build_rule(model_id, vectors, identity)
    ok = test.gallery_ok
    checks = listsize.validation(rule, test.gallery[ok], test.gallery_id[ok], padding, test.mated, test.nonmated)
    return listsize.card_section(rule, info, checks)


def _padding(calib: SplitEmbeddings) -> np.ndarray:
    """Distractor entries: every calibration image that gave an embedding, in a fixed order."""
    parts = [calib.gallery[calib.gallery_ok], calib.mated.vectors[calib.mated.ok],
             calib.nonmated.vectors[calib.nonmated.ok]]
    return np.concatenate(parts) if parts else np.zeros((0, 192), np.float32)
