"""The committed accuracy card of one model configuration (models/accuracy/*.json), from eval.json.

The card is what a force reviews before choosing a threshold (G7): the threshold
for each FPIR from the calibration split, the TPIR it gives on the test split
with its interval, how it falls under degradation and grows with watchlist size,
and the threshold floor the configuration must not go below.
"""
from __future__ import annotations

import json
from pathlib import Path

FLOOR_FPIR = "0.001"  # South Wales SOP: false alerts not to exceed 1 in 1,000


def _headline(figs: dict) -> dict:
    cal = figs.get("at_calibrated_threshold", {})
    return {"rank1": figs["rank1"], "fta_probes": figs["fta"]["probes"]["value"],
            "tpir_at_fpir": figs["tpir_at_fpir"],
            "tpir_ci95": {k: v["ci95"] for k, v in figs["at_fpir"].items()},
            "at_calibration_threshold": {k: {"tpir": v["tpir"]["value"], "fpir": v["fpir"]["value"],
                                             "fpir_ci95": v["fpir"]["ci95_wilson"]} for k, v in cal.items()}}


def build_card(doc: dict, configuration: str, runtime: dict) -> dict:
    """The card's JSON: headline figures, degradations, watchlist sizes and the floor."""
    rule = doc["list_size_rule"]
    return {
        "schema": "lfr-appliance/accuracy-card/v1", "configuration": configuration,
        "model_id": doc["model_id"], "runtime": runtime, "created": doc["created"],
        "dataset": "lfw-dev (../shared/datasets/lfw-dev)", "protocol": doc["protocol"],
        "eval_runtime_seconds": doc["runtime_seconds"],
        "thresholds_from_calibration": doc["thresholds"],
        "threshold_floor": {"value": rule["floor"], "list_size": rule["floor_list_size"],
                            "rule": f"list-size rule's threshold for FPIR {FLOOR_FPIR} on a "
                                    f"{rule['floor_list_size']}-entry list (appliance.thresholds)",
                            "note": "FPIR grows with the watchlist: a larger list gets a higher threshold "
                                    "(list_size_rule.thresholds); no configuration may go below the floor"},
        "list_size_rule": rule,
        "test": _headline(doc["test"]),
        "degradations": {k: {"description": v["description"], **_headline(v)}
                         for k, v in doc["degradations"].items()},
        "watchlist_size": [{"requested": r["requested"], "entries": r["entries"],
                            "padding_entries": r["padding_entries"], "reached": r["reached"],
                            "fpir_at_calibration_threshold": {k: v["fpir"]["value"]
                                                              for k, v in r["at_threshold"].items()},
                            "tpir_at_calibration_threshold": {k: v["tpir"]["value"]
                                                              for k, v in r["at_threshold"].items()},
                            "predicted_fpir_independent": r["predicted_fpir_independent"]}
                           for r in doc["watchlist_size"]["rows"]],
        "notes": doc["protocol"]["notes"],
    }


def write_card(doc: dict, path: Path, configuration: str, runtime: dict) -> dict:
    """Write the card JSON to ``path`` and return it."""
    from lfr_tools.evaluate.report import _clean_json  # noqa: PLC0415

    card = _clean_json(build_card(doc, configuration, runtime))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2) + "\n")
    return card
