"""`make hw-test`: the unit's real backends against the CPU backends on the same frames (commissioning).

Runs on the unit after provisioning, from /opt/appliance:

    make hw-test HW_CONFIG=/etc/appliance/appliance.toml

and writes a JSON report (default hw-results/hw-test.json) for the commissioning record:
- profile: the backends the board profile resolves to, with any fallback and missing device;
- cpu / npu: frames/s over the same frames, faces found, each backend's embeddings of the
  pinned demo photos compared with that model's reference vectors (hw/reference/), and
  "same person closer than another person" on its own vectors;
- npu_vs_cpu: detections matched by IoU on every frame;
- camera: the Pi camera's main + lores frames, sensor timestamps, frame rate, release;
- capture_to_alert: p50/p95 ms on a paced replay with a watchlisted face, per engine.
A part whose hardware is absent says so ("skipped: no Hailo device (...)", "skipped: no camera
(...)") and nothing else; a part that fails says why, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "hw" / "reference"
REFERENCE_PHOTOS = ("obama", "obama2", "obama3", "biden")
AGREEMENT_MIN = 0.99  # cosine of a backend's vector to its own reference vector, per photo
IOU_MATCH = 0.5

from appliance.board import resolve_profile  # noqa: E402
from appliance import inference  # noqa: E402
from appliance.config import Config, load_config  # noqa: E402
from appliance.errors import ApplianceError  # noqa: E402
from appliance.inference import hailo  # noqa: E402
from appliance.vision.engine import FaceEngine, decode_image  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two xyxy boxes."""
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else 0.0


def match_detections(ref: list[list[np.ndarray]], other: list[list[np.ndarray]]) -> dict:
    """Greedy one-to-one matching per frame at IoU >= IOU_MATCH; how much of each the other finds."""
    matched, ious = 0, []
    for boxes_a, boxes_b in zip(ref, other):
        free = list(range(len(boxes_b)))
        for a in boxes_a:
            scores = [(iou(a, boxes_b[j]), j) for j in free]
            best = max(scores, default=(0.0, -1))
            if best[0] >= IOU_MATCH:
                free.remove(best[1])
                matched, ious = matched + 1, ious + [best[0]]
    n_ref, n_other = sum(map(len, ref)), sum(map(len, other))
    return {"iou_threshold": IOU_MATCH, "cpu_faces": n_ref, "npu_faces": n_other, "matched": matched,
            "npu_found_of_cpu": round(matched / n_ref, 3) if n_ref else None,
            "cpu_found_of_npu": round(matched / n_other, 3) if n_other else None,
            "mean_iou": round(float(np.mean(ious)), 3) if ious else None}


def run_frames(engine: FaceEngine, frames: list[np.ndarray]) -> tuple[dict, list[list[np.ndarray]]]:
    """Detect, gate and embed every frame; frames/s and the boxes found."""
    boxes, faces = [], 0
    start = time.perf_counter()
    for frame in frames:
        found = engine.faces(frame)
        boxes.append([f.det.box for f in found])
        faces += len(found)
    seconds = time.perf_counter() - start
    return {"frames": len(frames), "faces": faces, "frames_per_s": round(len(frames) / seconds, 2)}, boxes


def agreement(engine: FaceEngine, photos: dict[str, Path], out_dir: Path) -> dict:
    """The backend's vectors of the reference photos against its model's reference vectors."""
    vectors = {}
    for name in REFERENCE_PHOTOS:
        vec, _ = engine.embed_image(decode_image(photos[name]))
        if vec is None:
            return {"ok": False, "why": f"no face found in reference photo {name}"}
        vectors[name] = vec
    same = float(vectors["obama"] @ vectors["obama2"])
    other = float(vectors["obama"] @ vectors["biden"])
    result = {"model_id": engine.model_id, "same_person_cosine": round(same, 3),
              "other_person_cosine": round(other, 3), "identities_separate": same > other}
    ref_file = REFERENCE / f"{engine.model_id.replace('@', '_')}.json"
    if not ref_file.exists():
        record = out_dir / ref_file.name
        record.write_text(json.dumps({k: [round(float(x), 6) for x in v] for k, v in vectors.items()}))
        return {**result, "ok": result["identities_separate"], "reference": f"none yet: recorded {record}; "
                f"review and commit it as {ref_file.relative_to(REPO)}"}
    ref = json.loads(ref_file.read_text())
    cos = {k: round(float(vectors[k] @ np.asarray(ref[k], np.float32)), 4) for k in REFERENCE_PHOTOS}
    ok = min(cos.values()) >= AGREEMENT_MIN and result["identities_separate"]
    return {**result, "ok": ok, "reference": str(ref_file.relative_to(REPO)), "cosine_to_reference": cos,
            "min_cosine_required": AGREEMENT_MIN}


def capture_to_alert(cfg: Config, engine: FaceEngine, clip: Path, photos: dict[str, Path], work: Path) -> dict:
    """Latency from a frame's capture to its alert: the unit's pipeline on the clip replayed at
    15 fps like a camera (frames it cannot keep up with are dropped), the photo's person watchlisted."""
    from lfr_tools.replay import replay  # noqa: PLC0415 - the unit with an in-memory watchlist (tools only)

    run_cfg = {"unit": {"data_dir": str(work / "data")}, "detect": cfg.detect.model_dump(),
               "capture": {"backend": "replay", "source": str(clip), "fps": 15.0}}
    result = replay(run_cfg, engine=engine, enrol={"HW-TEST": str(photos["obama"])}, config_path=work / "hw-test.toml")
    ms = np.asarray(result.latencies_ms)
    if not ms.size:
        return {"ok": False, "why": "no alert for the watchlisted face in the clip"}
    return {"ok": True, "alerts": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def cpu_engine(cfg: Config) -> FaceEngine:
    """The CPU engine of this profile (its configured CPU backend, else its fallback, else LiteRT)."""
    key = cfg.inference.backend if cfg.inference.backend in ("litert", "onnx") else None
    key = key or (cfg.board.inference_fallback if cfg.board.inference_fallback != "none" else "litert")
    return FaceEngine.from_config(cfg.model_copy(update={"inference": inference.settings_for(key, cfg.inference)}))


def npu_engine(cfg: Config) -> tuple[FaceEngine | None, str | None]:
    """The NPU engine, or why there is none: "skipped: no Hailo device (...)" when the card is absent."""
    reason = hailo.probe()
    if reason is not None:
        return None, f"skipped: no Hailo device ({reason})"
    settings = cfg.inference if isinstance(cfg.inference, hailo.Settings) else hailo.Settings()
    problem = hailo.preflight(settings)
    if problem is not None:
        return None, f"failed: the Hailo device is present but cannot run the networks: {problem}"
    from appliance.vision.npu import open_npu_engine  # noqa: PLC0415

    return open_npu_engine(cfg, settings), None


def camera_check(cfg: Config, frames: int = 60) -> dict | str:
    """The Pi camera: both streams, sensor timestamps, frame rate, every request released (it reopens)."""
    from appliance.capture import picamera2 as pi  # noqa: PLC0415

    reason = pi.probe()
    if reason is not None:
        return f"skipped: no camera ({reason})"
    from picamera2 import Picamera2  # noqa: PLC0415 - device-only SDK

    if not Picamera2.global_camera_info():
        return "skipped: no camera (picamera2 is installed but libcamera lists no camera: `rpicam-hello --list-cameras`)"
    got = []
    for _ in range(2):  # the second session opens only if the first released the camera
        with pi.PiCamera(pi.Settings()) as cam:
            for frame in cam.frames():
                got.append(frame)
                if len(got) % frames == 0:
                    cam.stop()
    first = got[:frames]
    try:
        version = importlib.metadata.version("picamera2")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (no package metadata)"
    ts = np.diff([f.sensor_ts_ns for f in first]) / 1e9
    return {"ok": bool((ts > 0).all()), "picamera2": version, "frames": len(first), "main": list(first[0].image.shape),
            "lores": list(first[0].lores.shape), "lores_scale": first[0].lores_scale,
            "frames_per_s": round(float(1 / np.median(ts)), 2), "reopened": len(got) == 2 * frames,
            "stall": cam.stall.snapshot().__dict__}


def load_frames(folder: Path) -> list[np.ndarray]:
    """Every image of a frame folder, in name order."""
    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))]


def run(config: Path | None, out: Path, work: Path, frames_dir: Path | None, latency: bool = True) -> dict:
    """Everything above, into one report."""
    from lfr_tools.demo import compose_demo_clip, fetch_photos  # noqa: PLC0415 - pinned registry photos

    cfg = load_config(config) if config and config.exists() else Config()
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
              "machine": platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "config": str(config) if config and config.exists() else "defaults (no config file)",
              "profile": _profile(cfg)}
    photos = fetch_photos(work / "assets")
    cpu = cpu_engine(cfg)
    clip = frames_dir or work / "clip"
    if frames_dir is None and not clip.is_dir():
        compose_demo_clip(cpu, photos, clip)
    frames = load_frames(clip)
    report["frames"] = {"source": str(clip), "count": len(frames), "size": list(frames[0].shape[:2][::-1])}
    report["cpu"], cpu_boxes = _engine_part(cpu, frames, photos, out.parent, cfg.board.expected_fps)
    npu, why = npu_engine(cfg)
    if npu is None:
        report["npu"] = report["npu_vs_cpu"] = why
    else:
        report["npu"], npu_boxes = _engine_part(npu, frames, photos, out.parent, cfg.board.expected_fps)
        report["npu"]["device"] = _device_info()
        report["npu_vs_cpu"] = match_detections(cpu_boxes, npu_boxes)
    report["camera"] = camera_check(cfg)
    if latency:
        report["capture_to_alert"] = {"cpu": capture_to_alert(cfg, cpu, clip, photos, work / "cpu")}
        if npu is not None:
            report["capture_to_alert"]["npu"] = capture_to_alert(cfg, npu, clip, photos, work / "npu")
    for engine in (cpu, npu):
        if engine is not None:
            engine.close()
    report["failed"] = _failures(report)
    out.write_text(json.dumps(report, indent=2, default=str))
    return report


def _engine_part(engine: FaceEngine, frames, photos, out_dir: Path, expected_fps: float) -> tuple[dict, list]:
    figures, boxes = run_frames(engine, frames)
    figures["model_id"] = engine.model_id
    if expected_fps:
        figures["fps_ratio_to_profile_target"] = round(figures["frames_per_s"] / expected_fps, 2)
    figures["embedding_agreement"] = agreement(engine, photos, out_dir)
    return figures, boxes


def _device_info() -> dict:
    shared = hailo._Shared.device
    return shared.info.__dict__ if shared is not None and shared.info else {}


def _profile(cfg: Config) -> dict | str:
    try:
        return resolve_profile(cfg).status()
    except ApplianceError as exc:
        return f"failed: {exc.message} (fix: {exc.fix})"


def _failures(report: dict) -> list[str]:
    """Every part that failed (not skipped), by name."""
    failed = []
    for part, value in report.items():
        if isinstance(value, str) and value.startswith("failed"):
            failed.append(part)
        elif isinstance(value, dict):
            bad = [k for k, v in value.items() if isinstance(v, dict) and v.get("ok") is False]
            failed += [f"{part}.{k}" for k in bad] + ([part] if value.get("ok") is False else [])
    return failed


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description="on-device comparison of the real backends with the CPU backends")
    p.add_argument("--config", type=Path, default=Path("/etc/appliance/appliance.toml"))
    p.add_argument("--out", type=Path, default=REPO / "hw-results" / "hw-test.json")
    p.add_argument("--work", type=Path, default=REPO / "var" / "hw-test")
    p.add_argument("--frames", type=Path, default=None, help="a folder of frames instead of the demo clip")
    p.add_argument("--no-latency", action="store_true", help="skip the paced capture-to-alert replay")
    args = p.parse_args(argv)
    try:
        report = run(args.config, args.out, args.work, args.frames, latency=not args.no_latency)
    except ApplianceError as exc:
        print(f"error: {exc.message}\nfix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    for part in ("profile", "cpu", "npu", "npu_vs_cpu", "camera", "capture_to_alert"):
        if part in report:
            print(f"{part:17} {json.dumps(report[part], default=str)[:300]}")
    print(f"report: {args.out}  failed: {report['failed'] or 'none'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
