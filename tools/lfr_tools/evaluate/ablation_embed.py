"""Embeddings for the ablation: every image detected once, then each alignment variant
embedded with and without its mirror image, in one process, cached in an .npz.

Per image the detector runs once (the most central face, as ``FaceEngine.embed_image``
chooses it), the face mesh once; each alignment variant is then embedded as one
pair (the face and its mirror) through the graph's fixed batch of two, which gives
both the plain embedding (first output) and the flip embedding (sum of both).
Step costs are timed per image so that the table can show the cost per face.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.errors import InputError
from appliance.vision.align import align
from appliance.vision.embed import normalise, with_mirrors
from lfr_tools.evaluate.embedding import central_detection, progress_bar, read_image

# alignment variant -> (landmark source, similarity fit)
ALIGNMENTS = {
    "detector-4pt": ("detector", "lmeds"),   # today: BlazeFace eyes, nose, mouth centre
    "mesh-4pt": ("mesh4", "lmeds"),           # the mesh's points on today's four-point template
    "mesh-5pt": ("mesh5", "lsq"),             # the mesh's five points on the ArcFace template
    "mesh-5pt-lmeds": ("mesh5", "lmeds"),
    "mesh2-5pt": ("mesh5-2", "lsq"),          # mesh run twice, the second time on its own region
}
STEPS = ("read", "detect", "mesh", "mesh2", "align", "embed_pair")


@dataclass
class AblationEmbeddings:
    """Per image: ok masks and plain/flip embeddings per alignment variant, and step times."""

    paths: list[str]
    detected: np.ndarray
    mesh_ok: np.ndarray
    plain: dict[str, np.ndarray] = field(default_factory=dict)
    flip: dict[str, np.ndarray] = field(default_factory=dict)
    ms: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write everything to one .npz."""
        arrays = {"paths": np.array(self.paths, dtype=str), "detected": self.detected, "mesh_ok": self.mesh_ok}
        arrays |= {f"plain/{k}": v for k, v in self.plain.items()}
        arrays |= {f"flip/{k}": v for k, v in self.flip.items()}
        arrays |= {f"ms/{k}": v for k, v in self.ms.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> "AblationEmbeddings":
        """Read what :meth:`save` wrote."""
        data = np.load(path)
        pick = lambda prefix: {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(prefix)}  # noqa: E731
        return cls([str(p) for p in data["paths"]], data["detected"], data["mesh_ok"],
                   pick("plain/"), pick("flip/"), pick("ms/"))

    def index(self) -> dict[str, int]:
        """Path -> row."""
        return {p: i for i, p in enumerate(self.paths)}


def _landmarks(source: str, det, mesh_points, mesh2_points) -> np.ndarray:
    """The landmark set of one variant; the mesh variants fall back to the detector's keypoints."""
    if source == "mesh5-2":
        source, mesh_points = "mesh5", mesh2_points
    if source == "detector" or mesh_points is None:
        return det.keypoints
    five = mesh_points.points
    if source == "mesh5":
        return five
    return np.vstack([five[:3], five[3:].mean(axis=0), det.keypoints[4:]])  # 6 points: BlazeFace layout


class _Timer:
    def __init__(self, ms: dict[str, list[float]]) -> None:
        self.ms, self.t = ms, time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.ms[step].append(1e3 * (now - self.t))
        self.t = now


def _embed_one(engine, mesh, path: Path, ms: dict[str, list[float]]) -> tuple[dict | None, bool]:
    """{variant: raw pair outputs (2, D)} of one image, or None when no face; and mesh ok."""
    timer = _Timer(ms)
    image = read_image(path)
    timer.lap("read")
    dets = engine.detector.detect(image)
    timer.lap("detect")
    if not dets:
        return None, False
    det = central_detection(dets, image)
    points = mesh.points(image, det.box, det.keypoints, passes=1)
    timer.lap("mesh")
    points2 = mesh.points(image, det.box, det.keypoints, passes=2)
    timer.lap("mesh2")
    out = {}
    for name, (source, method) in ALIGNMENTS.items():
        try:
            face = align(image, _landmarks(source, det, points, points2), method)
        except InputError:
            return None, points is not None
        timer.lap("align")
        out[name] = engine.embedder.raw(with_mirrors(face[None]))
        timer.lap("embed_pair")
    return out, points is not None


def embed_all(engine, mesh, paths: list[Path], progress: bool = True) -> AblationEmbeddings:
    """Detect, mesh, align (every variant) and embed (plain and flipped) each image once."""
    ms: dict[str, list[float]] = {s: [] for s in STEPS}
    n, dim = len(paths), 192
    plain = {k: np.zeros((n, dim), np.float32) for k in ALIGNMENTS}
    flip = {k: np.zeros((n, dim), np.float32) for k in ALIGNMENTS}
    detected, mesh_ok = np.zeros(n, bool), np.zeros(n, bool)
    with progress_bar(progress) as bar:
        task = bar.add_task("ablation: embed", total=n)
        for i, path in enumerate(paths):
            pairs, mesh_ok[i] = _embed_one(engine, mesh, path, ms)
            detected[i] = pairs is not None
            for name, raw in (pairs or {}).items():
                plain[name][i] = normalise(raw[:1])[0]
                flip[name][i] = normalise(raw[:1] + raw[1:])[0]
            bar.advance(task)
    return AblationEmbeddings([str(p) for p in paths], detected, mesh_ok, plain, flip,
                              {k: np.array(v, np.float32) for k, v in ms.items()})
