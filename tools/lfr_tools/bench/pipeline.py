"""End-to-end pipeline benchmark on the demo clip: frames/s, per-stage p50/p99 ms, peak RSS.

Each resolution runs in its own process so that peak RSS belongs to that run alone.
The clip is the demo's (registry photos, no ../shared needed), replayed unpaced.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = ((1280, 720), (1920, 1080))


def measure(size: tuple[int, int], workdir: Path) -> dict:
    """Compose the demo clip at ``size``, replay it once unpaced, return the figures."""
    from appliance.config import Config, parse_config  # noqa: PLC0415
    from lfr_tools.demo import WATCHLISTED, compose_demo_clip, fetch_photos  # noqa: PLC0415
    from lfr_tools.replay import replay  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    photos = fetch_photos(workdir / "assets")
    engine = FaceEngine.from_config(Config())
    clip = workdir / f"clip-{size[0]}x{size[1]}"
    compose_demo_clip(engine, photos, clip, size)
    enrol = {ref: str(photos[name]) for ref, name in WATCHLISTED.items()}
    cfg = parse_config({"unit": {"data_dir": str(workdir / "data")},
                        "capture": {"source": str(clip), "fps": 0.0}}, workdir / "bench.toml")
    engine.times.clear()
    start = time.perf_counter()
    result = replay(cfg, engine=engine, enrol=enrol)
    seconds = time.perf_counter() - start
    frames = result.counters["frames"]
    return {"resolution": f"{size[0]}x{size[1]}", "frames": frames, "seconds": round(seconds, 2),
            "frames_per_s": round(result.frames_per_s(), 2),
            "frames_per_s_including_start_up": round(frames / seconds, 2),
            "faces_per_frame": round(result.counters["faces_seen"] / max(frames, 1), 2),
            "alerts": len(result.alerts), "stages_ms": engine.times.summary(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(out_dir: Path) -> dict:
    """Benchmark entry point: one subprocess per resolution."""
    rows = []
    for w, h in SIZES:
        proc = subprocess.run([sys.executable, "-m", "lfr_tools.bench.pipeline", f"{w}x{h}", str(out_dir)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    from lfr_tools.bench.peer_clips import capture_to_alert  # noqa: PLC0415 - latency at 15 fps (issue 5)
    from lfr_tools.bench.plots import pipeline_png  # noqa: PLC0415

    result = {"clip": "demo clip (registry photos), 90 frames, unpaced replay, LiteRT, one thread per model, two pipeline stages",
              "runs": rows, "capture_to_alert": capture_to_alert(Path(out_dir) / "work" / "latency")}
    pipeline_png(Path(out_dir) / "pipeline.png", result)
    return result


if __name__ == "__main__":
    width, height = (int(v) for v in sys.argv[1].split("x"))
    print(json.dumps(measure((width, height), Path(sys.argv[2]) / "work")))
