"""`appliance ablation`: run the ablation and write ablation.json and ablation.md.

Rows (each on the lfw-dev test split, thresholds from the calibration split):
- alignment (detector four points; mesh on the four-point template; mesh five
  points on the ArcFace template) x flip test-time augmentation off and on;
- score rules on the best embedding: top-1/top-2 margin and cohort normalisation;
- templates: subjects with three or more photos enrolled from their first photo,
  from the mean of two, or with two rows (the protocol with two gallery photos).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from lfr_tools.evaluate import ablation, protocol
from lfr_tools.evaluate.ablation_embed import ALIGNMENTS, AblationEmbeddings, embed_all
from lfr_tools.evaluate.report import _clean_json

MARGIN_WEIGHTS = (0.5, 1.0)
# What the unit runs (appliance.vision.engine): the mesh twice, five points, least squares, flip.
UNIT = ("mesh2-5pt", True)
COHORT_K = (10, 50)


def all_paths(table: dict) -> list[Path]:
    """Every image any row of the ablation needs (one and two gallery photos per identity)."""
    paths: list[Path] = []
    for per_id in (1, 2):
        for split in protocol.build_splits(table, per_id).values():
            paths += split.all_paths()
    return list(dict.fromkeys(paths))


def cached_embeddings(dataset: Path, cache: Path, engine, mesh, progress: bool) -> AblationEmbeddings:
    """The ablation's embeddings, computed once and kept in ``cache`` (.npz)."""
    if cache.is_file():
        return AblationEmbeddings.load(cache)
    emb = embed_all(engine, mesh, all_paths(protocol.list_identities(dataset)), progress)
    emb.save(cache)
    return emb


def step_costs(emb: AblationEmbeddings) -> dict[str, float]:
    """Median ms per face of each step (an embedding call holds a pair of faces)."""
    med = {k: float(np.median(v)) if v.size else 0.0 for k, v in emb.ms.items()}
    align_one = med["align"]
    return {"detect": med["detect"], "mesh": med["mesh"], "mesh2": med["mesh2"], "align": align_one,
            "embed_call": med["embed_pair"], "embed_plain": med["embed_pair"] / 2,
            "embed_flip": med["embed_pair"]}


def _cost(costs: dict, alignment: str, flip: bool) -> float:
    """ms per face after detection: mesh (mesh variants), alignment and embedding."""
    source = ALIGNMENTS[alignment][0]
    mesh = 0.0 if source == "detector" else costs["mesh2" if source.endswith("-2") else "mesh"]
    return mesh + costs["align"] + costs["embed_flip" if flip else "embed_plain"]


def alignment_rows(splits, emb: AblationEmbeddings, costs: dict, reps: int) -> list[dict]:
    """Every alignment variant with flip off and on."""
    rows = []
    for name in ALIGNMENTS:
        for flip in (False, True):
            vectors = (emb.flip if flip else emb.plain)[name]
            rows.append({"group": "alignment x flip", "alignment": name, "flip": flip, "rule": "top1",
                         "enrolment": "one photo", "ms_per_face": _cost(costs, name, flip),
                         **ablation.evaluate(splits, emb, vectors, reps=reps)})
    return rows


def rule_rows(splits, emb: AblationEmbeddings, alignment: str, flip: bool, reps: int) -> list[dict]:
    """Score rules on one embedding variant."""
    vectors = (emb.flip if flip else emb.plain)[alignment]
    rules = {f"margin s1-{w}*s2": ablation.margin_rule(w) for w in MARGIN_WEIGHTS}
    rules |= {f"cohort T-norm k={k}": ablation.cohort_rule(k) for k in COHORT_K}
    return [{"group": "score rule", "alignment": alignment, "flip": flip, "rule": name, "enrolment": "one photo",
             **ablation.evaluate(splits, emb, vectors, rule, reps=reps)} for name, rule in rules.items()]


def template_rows(table: dict, emb: AblationEmbeddings, alignment: str, flip: bool, reps: int) -> list[dict]:
    """Two gallery photos per identity: first photo only, mean template, or two rows."""
    splits = protocol.build_splits(table, 2)
    vectors = (emb.flip if flip else emb.plain)[alignment]
    modes = {"first": "first photo of two", "mean": "mean of two (one row)", "rows": "two rows, best scores"}
    return [{"group": "templates (2 gallery photos)", "alignment": alignment, "flip": flip, "rule": "top1",
             "enrolment": label, "splits": {k: s.counts() for k, s in splits.items()},
             **ablation.evaluate(splits, emb, vectors, gallery_mode=mode, reps=reps)}
            for mode, label in modes.items()]


def best_variant(rows: list[dict]) -> dict:
    """The alignment x flip row chosen on the calibration split (never on the test split):
    highest mean of TPIR at FPIR 1e-2 and 1e-3 there."""
    return max(rows, key=lambda r: sum(r["calibration_tpir_at_fpir"].values()))


def run_ablation(dataset: Path, out_dir: Path, engine, mesh, reps: int = 500, progress: bool = True) -> dict:
    """Embed (or reuse the cache), evaluate every row, write ablation.json and ablation.md."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    emb = cached_embeddings(dataset, out_dir / "embeddings.npz", engine, mesh, progress)
    table = protocol.list_identities(dataset)
    splits = protocol.build_splits(table, 1)
    costs = step_costs(emb)
    rows = alignment_rows(splits, emb, costs, reps)
    best = best_variant(rows)
    rows += rule_rows(splits, emb, *UNIT, reps)
    rows += template_rows(table, emb, *UNIT, reps)
    doc = {"schema": "lfr-appliance/ablation/v1", "dataset": str(dataset), "model_id": engine.model_id,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "images": len(emb.paths), "faces": int(emb.detected.sum()), "mesh_found": int(emb.mesh_ok.sum()),
           "ms_per_step_median": costs, "load_average_1min": round(os.getloadavg()[0], 2),
           "splits": {k: s.counts() for k, s in splits.items()}, "unit": {"alignment": UNIT[0], "flip": UNIT[1]},
           "best_on_calibration": {k: best[k] for k in ("alignment", "flip")},
           "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    doc = _clean_json(doc)
    (out_dir / "ablation.json").write_text(json.dumps(doc, indent=2))
    (out_dir / "ablation.md").write_text(markdown(doc))
    plot(out_dir / "ablation.png", doc)
    return doc


def plot(path: Path, doc: dict) -> None:
    """TPIR at FPIR 1e-2 and 1e-3 with 95% intervals, one bar pair per row."""
    import matplotlib  # noqa: PLC0415 - plotting only when writing the report

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = doc["rows"]
    labels = [f"{r['alignment']}{' +flip' if r['flip'] else ''} | "
              f"{r['rule'] if r['group'] == 'score rule' else r['enrolment']}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.2), dpi=110)
    y = np.arange(len(rows))
    for offset, key, colour in ((-0.2, "0.01", "tab:blue"), (0.2, "0.001", "tab:orange")):
        values = [100 * (r["at_fpir"][key]["tpir"] or 0) for r in rows]
        ci = [r["at_fpir"][key].get("ci95") or [None, None] for r in rows]
        err = np.array([[v - 100 * c[0], 100 * c[1] - v] if c[0] is not None else [0, 0] for v, c in zip(values, ci)]).T
        ax.barh(y + offset, values, height=0.38, xerr=err, color=colour, label=f"TPIR at FPIR {key}", capsize=2)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 125)  # room on the right for the legend
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("TPIR on the test split, % (95% bootstrap CI)")
    ax.set_title(f"Ablation, {doc['model_id']}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _cell(row: dict, key: str) -> str:
    entry = row["at_fpir"][key]
    ci = entry.get("ci95")
    return f"{_pct(entry['tpir'])} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else _pct(entry["tpir"])


def _calibrated(row: dict, key: str) -> str:
    cal = row.get("at_calibrated_threshold", {}).get(key)
    if not cal:
        return "n/a"
    return f"{cal['threshold']:.3f}: {_pct(cal['tpir']['value'])} / {100 * cal['fpir']['value']:.2f}%"


def markdown(doc: dict) -> str:
    """The ablation table in Markdown (TPIR in %, 95% bootstrap CIs)."""
    lines = ["| group | alignment | flip | rule / enrolment | TPIR@1e-2 [95% CI] | TPIR@1e-3 [95% CI] | rank-1 "
             "| at calib. 1e-3 threshold: TPIR / FPIR | calib. split TPIR@1e-2 / 1e-3 | ms per face |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    unit = (doc["unit"]["alignment"], doc["unit"]["flip"])
    for r in doc["rows"]:
        what = r["rule"] if r["group"] == "score rule" else r["enrolment"]
        cost = f"{r['ms_per_face']:.1f}" if r.get("ms_per_face") is not None else "same"
        mark = " **(unit)**" if (r["alignment"], r["flip"]) == unit and r["group"] == "alignment x flip" else ""
        cal = r["calibration_tpir_at_fpir"]
        lines.append(f"| {r['group']} | {r['alignment']}{mark} | {'on' if r['flip'] else 'off'} | {what} | "
                     f"{_cell(r, '0.01')} | {_cell(r, '0.001')} | {_pct(r['rank1'])} | "
                     f"{_calibrated(r, '0.001')} | {_pct(cal['0.01'])} / {_pct(cal['0.001'])} | {cost} |")
    return "\n".join(lines) + "\n"
