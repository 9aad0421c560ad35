"""Write the evaluation: eval.json, det.png and a short Markdown card."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from lfr_tools.evaluate import degrade, protocol

SCHEMA = "lfr-appliance/eval/v1"
NOTES = [
    "Identities are split into calibration and test by a salted SHA-256 of the identity name "
    "(appliance.evaluate.protocol.split_of); thresholds come from the calibration split, every "
    "TPIR/FPIR figure from the test split.",
    "test.at_fpir sets each threshold on the test split's own non-mated searches (the metric's "
    "definition); test.at_calibrated_threshold applies the calibration thresholds, as a deployed "
    "unit would, and shows the FPIR actually realised.",
    "A failure to acquire (no face found) counts as a miss in mated searches and as no alert in "
    "non-mated searches; both stay in the denominators.",
    "Degradations are applied to the probes only; the gallery is the clean enrolment photo.",
    "An FPIR target is reported only with at least ceil(1/FPIR) non-mated searches.",
    "LFW is probably in view of the model's training data and its faces are large, frontal and "
    "well lit: clean figures are optimistic for a van camera.",
]


def _public(figs: dict) -> dict:
    return {k: v for k, v in figs.items() if not k.startswith("_")}


def build(dataset: Path, model_id: str, splits: dict[str, protocol.Split], opts, calib: dict,
          thresholds: dict, conditions: dict, size_table: dict, groups: dict | None,
          elapsed: float, embeddings_computed: int, embed_seconds: float = 0.0) -> dict:
    """Assemble the JSON document of one evaluation."""
    clean = _public(conditions["clean"])
    return {
        "schema": SCHEMA, "model_id": model_id, "dataset": str(dataset),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runtime_seconds": round(elapsed, 1), "embeddings_computed": embeddings_computed,
        "ms_per_image": round(1e3 * embed_seconds / max(1, embeddings_computed), 2),
        "load_average_1min": _load_average(),
        "protocol": {"gallery_per_id": opts.gallery_per_id, "max_mated_per_id": opts.max_mated_per_id, "split_salt": protocol.SPLIT_SALT.decode(),
                     "calibration_share": protocol.CALIBRATION_SHARE,
                     "subset": {"max_identities": opts.max_identities,
                                "max_images_per_id": opts.max_images_per_id},
                     "splits": {k: s.counts() for k, s in splits.items()},
                     "bootstrap_reps": opts.bootstrap_reps, "notes": NOTES},
        "options": opts.extra,
        "thresholds": thresholds, "thresholds_from": "calibration split, clean images",
        "tpir_at_fpir": clean["tpir_at_fpir"], "tpir_at_fpir_from": "test split, clean images",
        "calibration": _public(calib), "test": clean,
        "degradations": {name: {"description": degrade.DEGRADATIONS[name][1], **_public(figs)}
                         for name, figs in conditions.items() if name != "clean"},
        "watchlist_size": size_table, "groups": groups,
    }


def _load_average() -> float | None:
    """The 1-minute load average at the end (the machine is shared: context for the runtime)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _clean_json(value):
    """Replace NaN/inf by None so that eval.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write(out_dir: Path, doc: dict, conditions: dict) -> None:
    """Write eval.json, det.png and card.md into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(_clean_json(doc), indent=2))
    plot_det(out_dir / "det.png", {k: v["_det"] for k, v in conditions.items()}, doc["model_id"])
    if doc.get("list_size_rule"):
        plot_list_size(out_dir / "list_size.png", doc["list_size_rule"], doc["model_id"])
    (out_dir / "card.md").write_text(card_markdown(doc))


def plot_det(path: Path, curves: dict, title: str) -> None:
    """DET curves (FNIR against FPIR, log axes), one per condition."""
    import matplotlib  # noqa: PLC0415 - plotting is only needed when writing a report

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for name, (fpir, fnir) in curves.items():
        keep = fpir > 0
        ax.plot(fpir[keep], np.maximum(fnir[keep], 1e-4), label=name, lw=2.2 if name == "clean" else 1.2)
    for f in (1e-2, 1e-3):
        ax.axvline(f, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (non-mated searches alerting)")
    ax.set_ylabel("FNIR (mated searches missed, incl. no face found)")
    ax.set_title(f"Open-set DET, test split: {title}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_list_size(path: Path, rule: dict, title: str) -> None:
    """p(T) per entry, measured and extended, and each list size's threshold."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = np.array(rule["curve"]["threshold"])
    log_p = np.array(rule["curve"]["log10_entry_fmr"])
    measured = t <= rule["tail"]["measured_up_to"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(t[measured], 10 ** log_p[measured], lw=2, label="measured (calibration impostor pairs)")
    ax.plot(t[~measured], 10 ** log_p[~measured], "--", lw=2, label="extended (fitted tail)")
    for size, threshold in rule["thresholds"].items():
        ax.axvline(threshold, color="grey", ls=":", lw=0.9)
        ax.text(threshold, 1e-2, f" {size} entries: {threshold:.3f}", rotation=90, fontsize=7, va="top")
    ax.set_yscale("log")
    ax.set_ylim(1e-9, 1)
    ax.set_xlabel("threshold T (cosine)")
    ax.set_ylabel("p(T): per-entry false match rate")
    ax.set_title(f"List-size rule (FPIR {rule['target_fpir']:g}): {title}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.1f}%"


def _tpir_cell(entry: dict) -> str:
    if entry.get("tpir") is None:
        return "not reported"
    ci = entry.get("ci95")
    return f"{_pct(entry['tpir'])}" + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def _list_size_lines(rule: dict | None) -> list[str]:
    """The list-size rule: threshold per list size and its check on the test split."""
    if not rule:
        return []
    lines = ["", f"## Threshold by watchlist size (FPIR {rule['target_fpir']:g}; floor {rule['floor']:.4f})", "",
             f"Method: {rule['method']}.", "",
             "| list size | threshold | expected FPIR | entries measured | measured FPIR [Wilson CI] | TPIR |",
             "|---|---|---|---|---|---|"]
    for row in rule["validation_test_split"]:
        ci = row["measured_fpir_ci95"]
        lines.append(f"| {row['list_size']} | {row['threshold']:.4f} | {_pct(row['expected_fpir'])} | "
                     f"{row['entries_measured']} | {_pct(row['measured_fpir'])} [{_pct(ci[0])}, {_pct(ci[1])}] | "
                     f"{_pct(row['measured_tpir'])} |")
    return lines


def card_markdown(doc: dict) -> str:
    """The short human card: headline, thresholds, degradations, watchlist size."""
    test, keys = doc["test"], list(doc["test"]["at_fpir"])
    lines = [f"# Accuracy card: {doc['model_id']}", "",
             f"Data set `{doc['dataset']}`; test split {doc['protocol']['splits']['test']}; "
             f"evaluated in {doc['runtime_seconds']} s.", "",
             "| FPIR target | threshold (calibration) | TPIR test [95% CI] | TPIR / FPIR at calibration threshold |",
             "|---|---|---|---|"]
    for k in keys:
        cal = test.get("at_calibrated_threshold", {}).get(k)
        fixed = f"{_pct(cal['tpir']['value'])} / {_pct(cal['fpir']['value'])}" if cal else "n/a"
        t = doc["thresholds"].get(k)
        reason = test["at_fpir"][k].get("not_reported", "")
        lines.append(f"| {k} | {'n/a' if t is None else f'{t:.4f}'} | {_tpir_cell(test['at_fpir'][k])} "
                     f"{reason} | {fixed} |")
    lines += ["", f"Rank-1: {_pct(test['rank1'])}; failure to acquire (probes): "
              f"{_pct(test['fta']['probes']['value'])}.", "", "## Under degradation (test probes)", "",
              "| condition | FTA | rank-1 | " + " | ".join(f"TPIR@{k}" for k in keys) + " | FPIR at calib. 0.01 threshold |",
              "|---" * (4 + len(keys)) + "|"]
    for name, figs in [("clean", test)] + list(doc["degradations"].items()):
        cal = figs.get("at_calibrated_threshold", {}).get(keys[0])
        lines.append(f"| {name} | {_pct(figs['fta']['probes']['value'])} | {_pct(figs['rank1'])} | "
                     + " | ".join(_tpir_cell(figs["at_fpir"][k]) for k in keys)
                     + f" | {_pct(cal['fpir']['value']) if cal else 'n/a'} |")
    lines += ["", "## FPIR against watchlist size (calibration thresholds)", "",
              "| requested | entries (padding) | " + " | ".join(f"FPIR@{k} measured / predicted" for k in doc["thresholds"]
                                                       if doc["thresholds"][k] is not None) + " |",
              "|---|---|" + "---|" * sum(t is not None for t in doc["thresholds"].values())]
    for row in doc["watchlist_size"]["rows"]:
        cells = [f"{_pct(v['fpir']['value'])} / {_pct(row['predicted_fpir_independent'][k])}"
                 for k, v in row["at_threshold"].items()]
        lines.append(f"| {row['requested']} | {row['entries']} ({row['padding_entries']}) | " + " | ".join(cells) + " |")
    lines += _list_size_lines(doc.get("list_size_rule"))
    lines += ["", "Notes:"] + [f"- {n}" for n in doc["protocol"]["notes"]]
    return "\n".join(lines) + "\n"
