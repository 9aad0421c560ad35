"""The host side of the NPU path, measured without an NPU: what the Pi's CPU still does per frame.

Users of Hailo's Python examples report 7-8 fps end to end where the camera gives 30: the host,
not the NPU, is the usual bottleneck. Per 1080p frame with a 640x360 lores stream the host
letterboxes lores into SCRFD's 640x640 input, decodes the nine output maps (strides 8/16/32,
two anchors, NMS) and aligns each face from the main stream for the embedder. The NPU calls
themselves are not timed (no card here): `make hw-test` measures the whole path on a unit.
Peer in the same run: the CPU detector (BlazeFace, whole frame + tiles in turn) on the same frame.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

FACES = (0, 5, 20)
STRIDES = (8, 16, 32)


def scrfd_outputs(faces: int, rng: np.random.Generator, size: int = 640) -> list[np.ndarray]:
    """Output maps as the HEF gives them: low background scores, ``faces`` confident anchors."""
    out = []
    for s in STRIDES:
        n = size // s
        scores = rng.uniform(0, 0.3, (n, n, 2)).astype(np.float32)
        boxes = rng.uniform(0.5, 2.0, (n, n, 8)).astype(np.float32)
        kps = rng.uniform(-1.0, 1.0, (n, n, 20)).astype(np.float32)
        out += [boxes[None], scores[None], kps[None]]
    for _ in range(faces):  # spread over the strides' score maps
        s = int(rng.integers(0, 3))
        n = size // STRIDES[s]
        out[3 * s + 1][0, rng.integers(0, n), rng.integers(0, n), rng.integers(0, 2)] = 0.9
    return out


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def host_ms(main: np.ndarray, lores: np.ndarray, faces: int, rng: np.random.Generator) -> dict:
    """Median ms of each host step for one frame with ``faces`` faces."""
    from appliance.vision.align import align  # noqa: PLC0415
    from appliance.vision.scrfd import decode, letterbox, nms  # noqa: PLC0415

    outputs = scrfd_outputs(faces, rng)
    boxes, scores, kps = decode(outputs, 640, 0.5)
    keep = nms(boxes, scores, 0.4)
    five = [kps[i] * 3.0 for i in keep]
    points = [np.stack([k[0], k[1], k[2], (k[3] + k[4]) / 2]) + [400, 300] for k in five]
    steps = {"letterbox_ms": _median_ms(lambda: letterbox(lores, 640), 50),
             "decode_nms_ms": _median_ms(lambda: nms(*decode(outputs, 640, 0.5)[:2], 0.4), 50),
             "align_ms": _median_ms(lambda: [align(main, p) for p in points], 20)}
    steps["total_ms"] = round(sum(steps.values()), 3)
    return {"faces": int(len(keep)), **steps}


def cpu_detect_ms(main: np.ndarray) -> float:
    """The peer: the CPU engine's detector on the same frame (stream plan, frame 0)."""
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    with FaceEngine.from_config(Config()) as engine:
        engine.detector.detect(main, 0)
        return _median_ms(lambda: engine.detector.detect(main, 0), 10)


def run(out_dir: Path) -> dict:
    """Benchmark entry point."""
    rng = np.random.default_rng(0)
    main = rng.integers(0, 255, (1080, 1920, 3), np.uint8)
    lores = cv2.resize(main, (640, 360), interpolation=cv2.INTER_AREA)
    rows = {str(n): host_ms(main, lores, n, rng) for n in FACES}
    peer = cpu_detect_ms(main)
    result = {"what": "host-side ms per 1920x1080 frame on the NPU path (lores 640x360), NPU calls excluded",
              "load_avg_1m": round(os.getloadavg()[0], 2), "host": rows, "cpu_detector_ms": peer,
              "ratio_cpu_detector_to_npu_host_20_faces": round(peer / rows["20"]["total_ms"], 1)}
    _png(Path(out_dir) / "npu_host.png", result)
    return result


def _png(path: Path, result: dict) -> None:
    from lfr_tools.bench.plots import _pyplot  # noqa: PLC0415

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    labels = [f"NPU host, {k} faces" for k in result["host"]] + ["CPU detector (peer)"]
    values = [r["total_ms"] for r in result["host"].values()] + [result["cpu_detector_ms"]]
    ax.barh(labels, values, color=["#4c72b0"] * len(result["host"]) + ["#c44e52"])
    ax.set_xlabel(f"ms per 1080p frame (load {result['load_avg_1m']})")
    ax.set_title("Host CPU per frame: NPU path vs CPU detector", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
