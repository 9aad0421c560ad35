"""Side by side with face_recognition (dlib), the library a user would otherwise pick.

Same frames, same probes, one run. The peer runs in its own venv (created here
on first use, never in the appliance's environment) through peer_worker.py:
face_recognition==1.3.0 with dlib-bin and face-recognition-models==0.3.0
(installed with --no-deps, since its `dlib` requirement would compile dlib).
- Throughput: composed 1280x720 clips with 1, 5 and 20 lfw-dev faces; the peer
  does face_locations + face_encodings per frame (its defaults); the appliance
  does FaceEngine.faces per frame (detect with its tile pyramid, gate, align,
  embed every face, no tracking) and the whole pipeline replays the clip
  (capture, detect, track, embed when needed, match, decide) for end-to-end frames/s.
- Accuracy: the same lfw-dev test-split probes through both; TPIR at FPIR 1e-2
  with the threshold set on the same non-mated searches (peer score: minus the
  Euclidean distance, its own metric).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from appliance.errors import BackendUnavailable
from lfr_tools.paths import REPO_ROOT
from lfr_tools.bench import peer_clips

PEER_VENV = REPO_ROOT / "bench-results" / "peer-venv"
PEER_PACKAGES = ["dlib-bin==20.0.1.post1", "face-recognition-models==0.3.0", "numpy", "Pillow", "Click"]
PEER_NODEPS = ["face_recognition==1.3.0"]
WORKER = Path(__file__).with_name("peer_worker.py")
FPIR = 0.01
ACCEPTANCE_CLIP = "1280x720_5faces"  # issue 5: at least 25x the peer's frames/s here


def peer_python(venv: Path = PEER_VENV) -> Path:
    """The peer venv's Python, creating and filling the venv on first use."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import face_recognition, dlib"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES],
             [str(python), "-m", "pip", "install", "--quiet", "--no-deps", *PEER_NODEPS]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackendUnavailable(f"cannot build the peer venv: {' '.join(step[:4])}: "
                                     f"{done.stderr.strip()[-400:]}",
                                     fix="check access to the package registry, then rerun the bench")
    return python


def _worker(python: Path, mode: str, source: Path, dest: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([str(python), str(WORKER), mode, str(source), str(dest)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BackendUnavailable(f"peer worker failed ({mode}): {done.stderr.strip()[-600:]}",
                                 fix="delete bench-results/peer-venv and rerun the bench")


def ours_on_clips(engine, clips: dict[str, np.ndarray]) -> dict:
    """FaceEngine.faces on the first frames of every clip: per-frame ms and faces embedded."""
    out = {}
    for name, all_frames in clips.items():
        frames = all_frames[:peer_clips.peer_frames(name)]
        engine.faces(frames[0])  # warm-up
        rows = []
        for frame in frames:
            t0 = time.perf_counter()
            faces = engine.faces(frame)
            rows.append({"faces": sum(f.embedding is not None for f in faces),
                         "total_ms": (time.perf_counter() - t0) * 1e3})
        out[name] = rows
    return out


def _fps(rows: list[dict]) -> dict:
    ms = np.array([r["total_ms"] for r in rows])
    return {"frames": len(rows), "fps": float(1e3 / ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_faces": float(np.mean([r["faces"] for r in rows]))}


def pipeline_on_clip(frames: np.ndarray, enrol: dict[str, str], work: Path) -> dict:
    """The whole pipeline (replay capture, detect, gate, track, embed, match, decide) on one clip."""
    import cv2  # noqa: PLC0415

    from appliance.config import parse_config  # noqa: PLC0415
    from lfr_tools.replay import replay  # noqa: PLC0415

    folder = work / f"clip-{len(list(work.glob('clip-*')))}"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cfg = parse_config({"unit": {"data_dir": str(work / "data")},
                        "capture": {"source": str(folder), "fps": 0.0}}, work / "peer-bench.toml")
    start = time.perf_counter()
    result = replay(cfg, enrol=enrol)
    seconds = time.perf_counter() - start
    frames_done = result.counters["frames"]
    # the peer's figure is per frame, with its models loaded: ours too, from the first frame's
    # capture to the last frame's decision (loading models and enrolling the list excluded)
    return {"frames": frames_done, "fps": result.frames_per_s(), "fps_including_start_up": frames_done / seconds,
            "alerts": len(result.alerts), "faces_seen": result.counters["faces_seen"]}


def peer_on_clips(python: Path, clips: dict[str, np.ndarray], work: Path) -> dict:
    """The peer's per-frame rows on the first frames of every clip (run in its own venv)."""
    first = {k: v[:peer_clips.peer_frames(k), ..., ::-1].copy() for k, v in clips.items()}  # peer wants RGB
    np.savez(work / "frames.npz", **first)
    _worker(python, "clips", work / "frames.npz", work / "peer_clips.json")
    return json.loads((work / "peer_clips.json").read_text())


def throughput(engine, python: Path, clips: dict[str, np.ndarray], enrol: dict[str, str], work: Path) -> dict:
    """Frames/s of both systems on the same clips, and the ratios."""
    peer = peer_on_clips(python, clips, work)
    ours = ours_on_clips(engine, clips)
    rows = {}
    for name, frames in clips.items():
        p, o = _fps(peer[name]), _fps(ours[name])
        pipe = pipeline_on_clip(frames, enrol, work)
        rows[name] = {"peer": p, "appliance_engine_per_frame": o, "ratio_engine": o["fps"] / p["fps"],
                      "appliance_pipeline": pipe, "ratio_pipeline": pipe["fps"] / p["fps"]}
    return rows


def repeated_ratio(python: Path, name: str, frames: np.ndarray, enrol: dict[str, str], work: Path,
                   rounds: int = 3) -> dict:
    """The acceptance ratio measured ``rounds`` times, peer and pipeline back to back in each round,
    so that both sides of each ratio see the same minute of a machine whose speed drifts."""
    out = []
    for _ in range(rounds):
        peer = _fps(peer_on_clips(python, {name: frames}, work)[name])["fps"]
        ours = pipeline_on_clip(frames, enrol, work)["fps"]
        out.append({"peer_fps": peer, "pipeline_fps": ours, "ratio": ours / peer})
    return {"clip": name, "rounds": out, "median_ratio": float(np.median([r["ratio"] for r in out])),
            "min_ratio": float(min(r["ratio"] for r in out))}


def _peer_search(gallery: np.ndarray, gallery_id: np.ndarray, probes: np.ndarray, ok: np.ndarray):
    """Top-1 by smallest Euclidean distance; score = -distance (higher is more alike)."""
    top_id = np.full(len(probes), -1, np.int64)
    top = np.full(len(probes), -np.inf)
    idx = np.flatnonzero(ok)
    if idx.size and len(gallery):
        d = np.linalg.norm(probes[idx, None, :] - gallery[None, :, :], axis=2)
        best = d.argmin(axis=1)
        top_id[idx], top[idx] = gallery_id[best], -d[np.arange(idx.size), best]
    return top_id, top


def accuracy(engine, python: Path, probe_set: peer_clips.ProbeSet, work: Path) -> dict:
    """TPIR at FPIR 1e-2 (bootstrap CI), rank-1 and FTA of both systems on the same probes."""
    from lfr_tools.evaluate import figures, metrics  # noqa: PLC0415
    from lfr_tools.evaluate.embedding import EmbeddingCache  # noqa: PLC0415

    paths = probe_set.all_paths()
    (work / "probes.txt").write_text("\n".join(str(p) for p in paths) + "\n")
    _worker(python, "probes", work / "probes.txt", work / "peer_probes.npz")
    peer = np.load(work / "peer_probes.npz")
    t0 = time.perf_counter()
    ours_vecs, ours_ok = EmbeddingCache(engine).embed(paths)
    ours_seconds = time.perf_counter() - t0
    out = {"probes": probe_set.counts(), "fpir": FPIR}
    for name, vecs, ok, seconds, searcher in (
            ("appliance", ours_vecs, ours_ok, ours_seconds, None),
            ("peer", peer["embeddings"], peer["ok"], float(peer["seconds"]), _peer_search)):
        results = probe_set.results(vecs, ok, searcher)
        fig = figures.at_fpir(results, FPIR, reps=300)
        out[name] = {"tpir": fig["tpir"], "ci95": fig["ci95"], "threshold": fig["threshold"],
                     "rank1": metrics.rank1(results), "fta": float(1 - ok.mean()),
                     "ms_per_image": seconds * 1e3 / len(paths)}
    out["tpir_difference"] = out["appliance"]["tpir"] - out["peer"]["tpir"]
    return out


def plot(path: Path, rows: dict, acc: dict | None) -> None:
    """Bar chart of frames/s per clip for both systems (log scale)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    series = [("face_recognition (dlib)", [rows[n]["peer"]["fps"] for n in names]),
              ("appliance engine, every face every frame", [rows[n]["appliance_engine_per_frame"]["fps"] for n in names])]
    if all("appliance_pipeline" in rows[n] for n in names):
        series.append(("appliance pipeline (end to end)", [rows[n]["appliance_pipeline"]["fps"] for n in names]))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.bar(x + i * width, values, width, label=label)
    ax.set_xticks(x + width * (len(series) - 1) / 2, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("frames/s")
    title = "Peer benchmark"
    if acc:
        title += f"; TPIR@FPIR 1e-2: appliance {acc['appliance']['tpir']:.3f}, peer {acc['peer']['tpir']:.3f}"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(out_dir: Path) -> dict:
    """Benchmark entry point: throughput and accuracy side by side, or a stated skip."""
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    if not peer_clips.LFW.is_dir():
        return {"skipped": f"{peer_clips.LFW} absent: the peer bench needs lfw-dev faces"}
    try:
        python = peer_python()
    except BackendUnavailable as exc:
        return {"skipped": f"{exc.message} ({exc.fix})"}
    engine = FaceEngine.from_config(Config())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        work = Path(tmp)
        clips, enrol = peer_clips.standard_clips(engine)
        rows = throughput(engine, python, clips, enrol, work)
        rounds = repeated_ratio(python, ACCEPTANCE_CLIP, clips[ACCEPTANCE_CLIP], enrol, work)
        acc = accuracy(FaceEngine.from_config(peer_clips.eval_config()), python,
                       peer_clips.probe_set(), work)
    plot(out_dir / "peer.png", rows, acc)
    five = rows.get("1280x720_5faces", {})
    return {"peer": "face_recognition==1.3.0 (dlib-bin 20.0.1.post1, HOG detector, ResNet descriptor)",
            "clips": peer_clips.CLIP_NOTE, "throughput": rows, "accuracy": acc,
            "target": {"fps_ratio_5faces_min": 25.0, "tpir_not_lower": True},
            "fps_ratio_5faces_engine": five.get("ratio_engine"),
            "fps_ratio_5faces_pipeline": five.get("ratio_pipeline"),
            "fps_ratio_5faces_pipeline_repeated": rounds,
            "tpir_not_lower": bool(acc["tpir_difference"] >= 0)}
