"""Watchlist bench: seal (build) and start-up time for 1,000 and 10,000 entries.

Embeddings are synthetic (random unit vectors) and thumbnails are synthetic
96 px JPEGs of about the engine's size: this times the crypto, format, disk and
load path, not enrolment. Enrolment is timed separately on real lfw-dev photos
with the unit's engine (when ../shared is present) and reported per image, so a
real build time is about ``seal + entries * enrol_ms``.

- seal_s: encode payload + age-encrypt to the unit + sign the manifest;
- start_s: `deployment start` in the library (size bound, parse, signature,
  window, model, recipient, rollback, ciphertext hash, decrypt, payload hash,
  decode, re-encrypt to the per-deployment key, write the unit copy, record);
- resume_s: what `appliance run` does to pick the deployment up (read the unit
  copy, verify, decrypt, decode);
- purge_s: `deployment end` (wipe memory, destroy key, delete copy, record).
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from appliance.authority import parse_public
from lfr_tools.backoffice.authority import init_authority, load_authority
from appliance.keystore.file import FileKeyStore
from appliance.watchlist.deployment import Deployment
from appliance.watchlist.manifest import format_time
from appliance.watchlist.payload import Entry
from lfr_tools.backoffice.seal import Operation, seal_entries
from appliance.watchlist.verify import UnitTrust

from ..paths import LFW_DEV

SIZES = (1_000, 10_000)
MODEL_ID = "mobilefacenet@d8ba40c0127f"
DIM = 192
REPEATS = 3
TARGET_START_S = 2.0


def synthetic_entries(count: int, seed: int = 0) -> list[Entry]:
    """Random unit embeddings and distinct ~3 KB JPEG thumbnails (real engine thumbnails average ~2.9 KB)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(count, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ramp = np.linspace(40, 200, 96, dtype=np.float32)
    base = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1)
    entries = []
    for i in range(count):
        image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        thumb = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        entries.append(Entry(f"WL-{i:06d}", "wanted:bench", "custody:BENCH", "2026-01-01", "2027-01-01",
                             {MODEL_ID: matrix[i]}, thumb))
    return entries


def _unit(root: Path) -> tuple[FileKeyStore, Path]:
    keys = FileKeyStore(root / "keys-master")
    keys.init()
    init_authority(root / "authority")
    return keys, root / "authority"


def _deployment(root: Path, keys: FileKeyStore, authority_dir: Path, rep: int) -> Deployment:
    data = root / f"unit-{rep}"
    shutil.copytree(keys.root, data / "keys")
    store = FileKeyStore(data / "keys")
    trust = UnitTrust((parse_public((authority_dir / "authority-ed25519.pub").read_text().strip()),),
                      store.age_recipient(), MODEL_ID)
    return Deployment(data, store, trust, max_bundle_bytes=1 << 30)


def _time(func, cpu: list | None = None) -> tuple[float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    result = func()
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0, result


def bench_size(root: Path, count: int) -> dict:
    """Seal once per repeat, then start, resume and purge on a fresh unit data dir each time."""
    keys, authority_dir = _unit(root)
    entries = synthetic_entries(count)
    now = datetime.now(timezone.utc)
    operation = Operation(f"OP-BENCH-{count}", "Supt-1", format_time(now - timedelta(hours=1)),
                          format_time(now + timedelta(hours=6)), keys.age_recipient())
    authority = load_authority(authority_dir)
    seal, start, resume, purge, start_cpu, resume_cpu = [], [], [], [], [], []
    for rep in range(REPEATS):
        took, data = _time(lambda: seal_entries(operation, entries, authority))
        seal.append(took)
        bundle = root / f"bundle-{rep}.lfrwl"
        bundle.write_bytes(data)
        dep = _deployment(root, keys, authority_dir, rep)
        took, _ = _time(lambda: dep.start(bundle, "bench"), start_cpu)
        start.append(took)
        dep.close()
        runner = _deployment_resume(dep)
        took, watchlist = _time(runner.current_watchlist, resume_cpu)
        assert watchlist is not None and len(watchlist) == count
        resume.append(took)
        took, _ = _time(runner.end)
        purge.append(took)
    return {"entries": count, "bundle_bytes": len(data),
            "thumbnail_bytes_mean": round(float(np.mean([len(e.thumbnail) for e in entries])), 1),
            "seal_s_median": round(statistics.median(seal), 3), "start_s_median": round(statistics.median(start), 3),
            "start_s_max": round(max(start), 3), "start_cpu_s_median": round(statistics.median(start_cpu), 3),
            "resume_s_median": round(statistics.median(resume), 3),
            "resume_cpu_s_median": round(statistics.median(resume_cpu), 3),
            "purge_s_median": round(statistics.median(purge), 3), "repeats": REPEATS}


def _deployment_resume(started: Deployment) -> Deployment:
    """A second Deployment on the same data dir: what the `appliance run` process holds."""
    return Deployment(started.data_dir, started.keystore, started.trust, max_bundle_bytes=1 << 30)


def enrol_rate(limit: int = 60) -> dict | None:
    """Real enrolment time per lfw-dev photo with the unit's engine (None without ../shared)."""
    lfw = LFW_DEV
    if not lfw.is_dir():
        return None
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import EnrolmentReject, FaceEngine  # noqa: PLC0415

    engine = FaceEngine.from_config(Config())
    photos = [sorted(f.glob("*.jpg"))[0] for f in sorted(lfw.iterdir())[:limit]]
    times, thumbs, rejected = [], [], 0
    for photo in photos:
        image = cv2.imread(str(photo))
        t0 = time.perf_counter()
        try:
            thumbs.append(len(engine.enrol_image(image).thumbnail_jpeg))
        except EnrolmentReject:
            rejected += 1
        times.append(time.perf_counter() - t0)
    return {"photos": len(photos), "rejected": rejected, "enrol_ms_median": round(1000 * statistics.median(times), 1),
            "thumbnail_bytes_mean": round(float(np.mean(thumbs)), 1) if thumbs else None, "engine": engine.model_id}


def run(out_dir: Path) -> dict:
    """Run the watchlist bench; return JSON-serialisable results."""
    results, load_before = {}, os.getloadavg()
    for count in SIZES:
        with tempfile.TemporaryDirectory(prefix="wl-bench-") as tmp:
            results[str(count)] = bench_size(Path(tmp), count)
    enrol = enrol_rate()
    if enrol:
        for row in results.values():
            row["estimated_real_build_s"] = round(row["seal_s_median"] + row["entries"] * enrol["enrol_ms_median"]
                                                  / 1000, 1)
    big = results[str(SIZES[-1])]
    return {"note": "synthetic embeddings and thumbnails time the crypto, format and load path; enrolment is "
                    "timed on real lfw-dev photos separately", "sizes": results, "enrolment": enrol,
            "target": f"start-up with {SIZES[-1]} entries under {TARGET_START_S} s",
            "target_met_wall_median": big["start_s_median"] < TARGET_START_S,
            "target_met_cpu": big["start_cpu_s_median"] < TARGET_START_S, "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}
