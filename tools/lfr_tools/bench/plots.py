"""PNG companions of the pipeline, match and crowd benchmarks (the JSON stays the record)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib  # noqa: PLC0415 - dev extra, benches only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def pipeline_png(path: Path, result: dict) -> None:
    """Per-stage p50/p99 latency per resolution, and the capture-to-alert latency histogram."""
    plt = _pyplot()
    fig, (stages_ax, alert_ax) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    runs = result.get("runs", [])
    stages = list(dict.fromkeys(s for r in runs for s in r["stages_ms"]))  # pipeline order, as first seen
    x = np.arange(len(stages))
    width = 0.8 / max(2 * len(runs), 1)
    for i, r in enumerate(runs):
        for j, pct in enumerate(("p50_ms", "p99_ms")):
            values = [r["stages_ms"].get(s, {}).get(pct, 0.0) for s in stages]
            stages_ax.bar(x + (2 * i + j) * width, values, width, label=f"{r['resolution']} {pct[:3]}")
    stages_ax.set_xticks(x + width * (2 * len(runs) - 1) / 2, stages, fontsize=8)
    stages_ax.set_ylabel("ms per frame")
    stages_ax.set_title(f"Per-stage latency, {result.get('clip', '')}", fontsize=8)
    stages_ax.legend(fontsize=7)
    clips = result.get("capture_to_alert", {}).get("clips", {})
    for name, clip in clips.items():
        if clip.get("latencies_ms"):
            alert_ax.hist(clip["latencies_ms"], bins=20, alpha=0.6,
                          label=f"{name}: {clip['alerts']} alerts, p99 {clip['p99_ms']:.0f} ms")
    alert_ax.axvline(250, color="red", linestyle="--", label="target 250 ms")
    alert_ax.set_xlabel("capture to alert, ms (15 frames/s replay)")
    alert_ax.set_ylabel("alerts")
    alert_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def match_png(path: Path, result: dict) -> None:
    """Per-probe 1:N match time against watchlist size: the shipped top-1 and the fp32 scan."""
    plt = _pyplot()
    rows = result["rows"]
    sizes = [r["entries"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    series = {f"Watchlist.top1, {k.replace('_', ' ')}": [r["watchlist_top1"][k]["single_probe_ms"] for r in rows]
              for k in rows[0]["watchlist_top1"]}
    series["fp32 scan (peer)"] = [r["fp32_scan_peer"]["single_probe_ms"] for r in rows]
    for label, points in series.items():
        line = ax.plot(sizes, [p["p50"] for p in points], marker="o", label=f"{label} p50")[0]
        ax.plot(sizes, [p["p99"] for p in points], marker="x", linestyle=":", color=line.get_color(),
                label=f"{label} p99")
    ax.axhline(result["target_ms_per_probe"], color="red", linestyle="--", label="target")
    ax.set_xscale("log")
    ax.set_xlabel("watchlist entries")
    ax.set_ylabel("ms per probe (one probe)")
    ax.set_title("1:N match, 192-D", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def crowd_png(path: Path, result: dict) -> None:
    """Per-shape bars of the pooled crowd figures against their targets, and coverage over each clip."""
    plt = _pyplot()
    shapes = {k: v for k, v in result.get("shapes", {}).items() if "skipped" not in v}
    fig, (bars_ax, time_ax) = plt.subplots(1, 2, figsize=(12, 4), dpi=110)
    metrics = ("listed_alerted_fraction", "coverage", "coverage_min")
    x = np.arange(len(metrics))
    width = 0.8 / max(len(shapes), 1)
    for i, (name, row) in enumerate(shapes.items()):
        bars_ax.bar(x + i * width, [row[m] for m in metrics], width,
                    label=f"{name}: {row['listed_alerted']}/{row['listed']} alerted, {row['false_alerts']} false, "
                          f"{row['duplicate_alerts']} dup, p90 detect {row['first_detection_p90_s_worst']} s")
    bars_ax.axhline(result["targets"]["coverage"], color="red", linestyle="--", label="coverage target")
    bars_ax.set_xticks(x + width * (len(shapes) - 1) / 2, ["listed alerted", "coverage (mean)", "coverage (worst seed)"])
    bars_ax.set_ylim(0, 1.05)
    bars_ax.set_title(f"Crowd clips, 15 frames/s paced, seeds {', '.join(map(str, result['seeds']))} pooled",
                      fontsize=9)
    bars_ax.legend(fontsize=6)
    for name, row in shapes.items():
        for seed, run in row["by_seed"].items():
            curve = run["coverage_per_frame"]
            seconds = [i / 15 for i, v in enumerate(curve) if v is not None]
            time_ax.plot(seconds, [v for v in curve if v is not None], label=f"{name} seed {seed}", linewidth=0.8)
    time_ax.set_xlabel("clip time, s")
    time_ax.set_ylabel("visible faces detected / visible")
    time_ax.set_ylim(0, 1.05)
    time_ax.legend(fontsize=5, ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
