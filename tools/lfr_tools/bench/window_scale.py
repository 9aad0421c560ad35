"""How large a window may grow round a face before the detector loses it (issue 12).

Behind two search-plan choices: how far tracks close together may share one focus window
(``[detect] focus_merge_scale``) and what a discovery tile finds of the smallest faces. Each
visible face of the crowd clips (every 10th frame of two seeds, day and night 1080p) is put
at a random place inside a square window of N times its side, the window is searched with
the short-range (focus) or the full-range (discovery) model on the frame as the detector
sees it (lifted when dark), and a face counts as found when a detection's centre lies within
half its side of the face's centre. Needs ../shared/datasets/lfw-dev ("skipped" otherwise).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfr_tools.crowd import compose_crowd, visible
from lfr_tools.paths import LFW_DEV

SHAPES = ("day-1080p", "night-1080p")
SEEDS = (12, 13)
EVERY = 10  # frames
SCALES = {"short_range": (3.0, 4.5, 6.0, 8.0, 10.0), "full_range": (6.0, 8.0, 9.0, 10.0, 11.5)}
RNG_SEED = 0


def found_at(detector, net, frame: np.ndarray, box: np.ndarray, scale: float, rng: np.random.Generator) -> bool:
    """Whether ``net`` finds the face ``box`` in a window ``scale`` times its side, the face at a
    random place inside it."""
    from appliance.vision.detect import Region  # noqa: PLC0415

    h, w = frame.shape[:2]
    side = float(max(box[2] - box[0], box[3] - box[1]))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    size = int(min(scale * side, h))
    fx, fy = rng.uniform(side * 0.6, max(size - side * 0.6, side * 0.6 + 1e-3), 2)
    x, y = int(min(max(cx - fx, 0), w - size)), int(min(max(cy - fy, 0), h - size))
    region = Region(x, y, size, (x > 0, y > 0, x + size < w, y + size < h))
    return any(np.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy) < side / 2
               for d in detector.detect_region(frame, region, net))


def measure(engine, clip) -> dict[str, dict[float, list[int]]]:
    """[found, tried] per model and scale on one clip."""
    net, focus_net = engine.detector.pool.slots[0]
    nets = {"short_range": focus_net, "full_range": net}
    counts = {k: {s: [0, 0] for s in scales} for k, scales in SCALES.items()}
    rng = np.random.default_rng(RNG_SEED)
    frames = sorted(clip.frames.glob("*.jpg"))
    truth = clip.truth
    for seq in range(EVERY, len(frames), EVERY):
        frame = engine.lift(cv2.imread(str(frames[seq])))
        for row in truth["frames"][seq]:
            if not visible(row, truth["occluded_above"]):
                continue
            for key, scales in SCALES.items():
                for scale in scales:
                    hit = found_at(engine.detector, nets[key], frame, np.asarray(row["box"]), scale, rng)
                    counts[key][scale][0] += hit
                    counts[key][scale][1] += 1
    return counts


def run(out_dir: Path) -> dict:
    """Benchmark entry point: detection rate per model and window scale, day and night."""
    from rich.progress import track  # noqa: PLC0415

    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    result = {"bench": __doc__.split("\n\n")[0], "scales": {k: list(v) for k, v in SCALES.items()},
              "seeds": list(SEEDS), "every_nth_frame": EVERY}
    if not LFW_DEV.is_dir():
        result["skipped"] = f"{LFW_DEV} absent: the crowd clips are composed from labelled face photos"
        return result
    work = Path(out_dir) / "work" / "crowd"
    with FaceEngine.from_config(Config()) as engine:
        for shape in SHAPES:
            total = {k: {s: [0, 0] for s in scales} for k, scales in SCALES.items()}
            for seed in track(SEEDS, description=f"{shape}: windows round each face"):
                counts = measure(engine, compose_crowd(LFW_DEV, work, shape, seed, engine=engine))
                for key in total:
                    for scale in total[key]:
                        total[key][scale] = [a + b for a, b in zip(total[key][scale], counts[key][scale])]
            result[shape] = {key: {str(scale): {"found": f, "faces": n, "rate": round(f / max(n, 1), 3)}
                                   for scale, (f, n) in rows.items()} for key, rows in total.items()}
    return result
