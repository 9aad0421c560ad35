"""The inputs of the peer benchmark: standard clips and a fixed probe set from lfw-dev.

Clips: 1280x720 frames with 1, 5 and 20 lfw-dev heads walking slowly across a
textured background, face heights 56-96 px (sizes both systems' detectors can
find, so the comparison is of speed, not of recall). Probes: a deterministic
slice of the evaluation's test split (appliance.evaluate.protocol).
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lfr_tools.paths import LFW_DEV

LFW = LFW_DEV
SIZE = (1280, 720)            # the acceptance clip size (and the latency run's)
SIZES = ((1280, 720), (1920, 1080))
FACES = (1, 5, 20)
FRAMES = 30        # frames per clip for the appliance's pipeline run
PEER_FRAMES = 6    # the first frames, for the per-frame runs (the peer takes seconds a frame)
PEER_FRAMES_1080P = 3
HEIGHTS = (56.0, 96.0)
CLIP_NOTE = (f"1280x720 and 1920x1080, {FRAMES} frames each (per-frame runs: the first {PEER_FRAMES}, "
             f"{PEER_FRAMES_1080P} at 1920x1080), "
             f"{FACES} lfw-dev heads at {HEIGHTS[0]:.0f}-"
             f"{HEIGHTS[1]:.0f} px face height walking on a textured background (appliance.scenes)")
ENROLLED, MATED_PER_ID, NONMATED = 120, 2, 300


def _sprites(engine, count: int) -> list:
    from lfr_tools.bench.recall import lfw_sprites  # noqa: PLC0415

    return lfw_sprites(engine, LFW, count)


def peer_frames(name: str) -> int:
    """How many of a clip's first frames the per-frame runs take."""
    return PEER_FRAMES_1080P if name.startswith("1920x1080") else PEER_FRAMES


def clip(sprites: list, faces: int, seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """FRAMES frames (BGR) of ``faces`` heads on a jittered grid, each drifting a few px a frame."""
    from lfr_tools.scenes import Actor, background, render  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    w, h = size
    cols = int(np.ceil(np.sqrt(faces * w / h)))
    rows = int(np.ceil(faces / cols))
    actors = []
    for i, sprite in enumerate(sprites[:faces]):
        cx = (i % cols + 0.5) * w / cols + rng.uniform(-0.15, 0.15) * w / cols
        cy = (i // cols + 0.5) * h / rows + rng.uniform(-0.1, 0.1) * h / rows
        height = rng.uniform(*HEIGHTS) if faces > 1 else HEIGHTS[1]
        height = min(height, 0.55 * h / rows)
        dx = rng.uniform(-3, 3) * FRAMES
        actors.append(Actor(sprite, 0, FRAMES - 1, (cx, cy), (cx + dx, cy), height))
    bg = background(size, seed=seed)
    return np.stack([render(bg, actors, seq)[0] for seq in range(FRAMES)])


def standard_clips(engine) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The standard clips keyed like '1280x720_5faces', and a watchlist to run them with.

    The watchlist enrols, from a different photo, the people in the 5-face clip that
    have one, so that the pipeline run matches, tracks and alerts as in service.
    """
    sprites = _sprites(engine, max(FACES))
    clips = {f"{w}x{h}_{n}faces": clip(sprites, n, seed=n, size=(w, h)) for w, h in SIZES for n in FACES}
    enrol = {}
    for sprite in sprites[:5]:
        photos = sorted((LFW / sprite.identity).glob("*.jpg"))
        if len(photos) > 1:
            enrol[f"S-{len(enrol) + 1:03d}"] = str(photos[1])
    return clips, enrol


def eval_config():
    """The unit's config with whole-image detection, as `appliance eval` runs single photos."""
    from appliance.config import Config  # noqa: PLC0415

    cfg = Config()
    return cfg.model_copy(update={"detect": cfg.detect.model_copy(update={"tile_sizes": [],
                                                                          "whole_frame": True})})


@dataclass
class ProbeSet:
    """A gallery (one image per enrolled identity), mated and non-mated probes."""

    gallery: list[tuple[int, Path]] = field(default_factory=list)
    mated: list[tuple[int, Path]] = field(default_factory=list)
    nonmated: list[tuple[int, Path]] = field(default_factory=list)

    def all_paths(self) -> list[Path]:
        """Gallery, then mated, then non-mated image paths."""
        return [p for _, p in self.gallery + self.mated + self.nonmated]

    def counts(self) -> dict:
        """Sizes, for the report."""
        return {"gallery": len(self.gallery), "mated": len(self.mated), "nonmated": len(self.nonmated)}

    def results(self, vectors: np.ndarray, ok: np.ndarray, searcher=None):
        """SearchResults of the probes against the gallery (vectors in all_paths order)."""
        from lfr_tools.evaluate import metrics  # noqa: PLC0415

        search = searcher or metrics.search
        g, m = len(self.gallery), len(self.mated)
        gid = np.array([i for i, _ in self.gallery])
        keep = ok[:g]
        mid = np.array([i for i, _ in self.mated])
        nid = np.array([i for i, _ in self.nonmated])
        top_id, top = search(vectors[:g][keep], gid[keep], vectors[g:g + m], ok[g:g + m])
        _, ntop = search(vectors[:g][keep], gid[keep], vectors[g + m:], ok[g + m:])
        return metrics.SearchResults(top_id == mid, top, mid, ntop, nid)


def probe_set() -> ProbeSet:
    """The fixed probe slice of lfw-dev's test split."""
    from lfr_tools.evaluate import protocol  # noqa: PLC0415

    test = protocol.build_splits(protocol.list_identities(LFW))["test"]
    order = sorted(set(test.identities), key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    index = {n: i for i, n in enumerate(order)}
    enrolled = [n for n in order if any(i == n for i, _ in test.gallery)][:ENROLLED]
    nonmated_ids = [n for n in order if not any(i == n for i, _ in test.gallery)][:NONMATED]
    chosen = set(enrolled)
    out = ProbeSet()
    out.gallery = [(index[i], p) for i, p in test.gallery if i in chosen]
    for name in enrolled:
        out.mated += [(index[name], p) for i, p in test.mated if i == name][:MATED_PER_ID]
    first = {}
    for i, p in test.nonmated:
        first.setdefault(i, p)
    out.nonmated = [(index[n], first[n]) for n in nonmated_ids]
    return out


def enrol_everyone(engine, identities: list[str]) -> dict[str, str]:
    """Enrol each person from another photo where lfw-dev has a usable one, else the same photo."""
    from appliance.vision.engine import EnrolmentReject, decode_image  # noqa: PLC0415

    enrol = {}
    for identity in identities:
        photos = sorted((LFW / identity).glob("*.jpg"))
        for photo in photos[1:] + photos[:1]:
            try:
                engine.enrol_image(decode_image(photo))
            except EnrolmentReject:
                continue
            enrol[f"S-{len(enrol) + 1:03d}"] = str(photo)
            break
    return enrol


def capture_to_alert(work: Path, fps: float = 15.0) -> dict:
    """Capture-to-alert ms replaying the 5- and 20-face clips at ``fps``, everyone enrolled.

    Each alert's latency runs from its frame's capture time to the alert leaving the
    decision (RunResult.latencies_ms); the replay is paced, so frames the pipeline
    cannot keep up with are dropped (latest frame wins), as from a live camera.
    """
    from appliance.config import Config, parse_config  # noqa: PLC0415
    from lfr_tools.replay import replay  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    if not LFW.is_dir():
        return {"skipped": f"{LFW} absent"}
    engine = FaceEngine.from_config(Config())
    sprites = _sprites(engine, max(FACES))
    work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="latency-", dir=work))
    out = {"fps": fps, "clips": {}}
    for faces in FACES[1:]:
        folder = work / f"latency-{faces}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(clip(sprites, faces, seed=faces)):
            cv2.imwrite(str(folder / f"{i:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cfg = parse_config({"unit": {"data_dir": str(work / f"data-{faces}")},
                            "capture": {"source": str(folder), "fps": fps}}, work / "latency.toml")
        enrol = enrol_everyone(engine, [s.identity for s in sprites[:faces]])
        result = replay(cfg, enrol=enrol)
        ms = np.array(result.latencies_ms)
        out["clips"][f"{SIZE[0]}x{SIZE[1]}_{faces}faces"] = {
            "enrolled": len(enrol), "alerts": int(ms.size),
            "frames_processed": result.counters["frames"], "frames_offered": FRAMES,
            "p50_ms": float(np.percentile(ms, 50)) if ms.size else None,
            "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
            "max_ms": float(ms.max()) if ms.size else None,
            "latencies_ms": [round(float(v), 1) for v in ms]}
    return out
