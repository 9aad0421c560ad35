"""Embeddings of image files through the unit's own engine, cached per (image, degradation).

Each image is decoded, optionally degraded (seeded by its path, so repeatable),
and given to ``engine.embed_image``: the most central face, detected on the
whole image, aligned and embedded exactly as the unit does it.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from appliance import imagefile
from appliance.errors import InputError
from lfr_tools.evaluate import degrade

EMBEDDING_DIM = 192


class ImageEmbedder(Protocol):
    """What the evaluation needs of a FaceEngine."""

    model_id: str

    def embed_image(self, image_bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Embedding and box of the most central face, or (None, None)."""
        ...


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8 (size and pixel count checked first); InputError naming the file."""
    try:
        return imagefile.read_file(path, cv2.IMREAD_COLOR)
    except imagefile.ImageRefused as exc:
        raise InputError(f"cannot read image {path}: {exc}",
                         fix="remove the file or replace it with a JPEG/PNG") from None


def path_seed(path: Path) -> int:
    """A stable per-image seed for the random parts of a degradation."""
    return int.from_bytes(hashlib.sha256(os.fsencode(str(Path(path).name))).digest()[:4], "big")


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress display on stderr (silent when disabled)."""
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
                    transient=False)


def central_detection(dets: list, image: np.ndarray):
    """The detection whose box centre is nearest the image centre (FaceEngine.embed_image's rule)."""
    centre = np.array(image.shape[1::-1], np.float32) / 2
    return min(dets, key=lambda d: float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre)))


class EmbeddingCache:
    """Embeds images once per (path, degradation) within one run.

    With a FaceEngine (``central_face`` and ``embed_faces``) a chunk of images is
    embedded with the engine's own stages: the most central face, the face mesh's
    alignment, the flip pair: exactly ``embed_image``, what the unit runs. Any other
    ImageEmbedder is called through ``embed_image``.
    """

    CHUNK = 32

    def __init__(self, engine: ImageEmbedder, progress: Progress | None = None) -> None:
        self.engine = engine
        self.progress = progress
        self._store: dict[tuple[str, str], np.ndarray | None] = {}
        self.computed = 0
        self.seconds = 0.0  # time spent decoding, degrading, detecting, aligning and embedding
        self._batched = hasattr(engine, "central_face") and hasattr(engine, "embed_faces")

    def _image(self, path: Path, degradation: str) -> np.ndarray:
        return degrade.apply(degradation, read_image(path), path_seed(path))

    def _face(self, image: np.ndarray):
        try:
            return self.engine.central_face(image)
        except InputError:  # degenerate keypoints: the face cannot be aligned, so none acquired
            return None

    def _compute(self, paths: Sequence[Path], degradation: str) -> list[np.ndarray | None]:
        if not self._batched:
            return [self._embed_image(self._image(p, degradation)) for p in paths]
        faces = [self._face(self._image(p, degradation)) for p in paths]
        found = [f for f in faces if f is not None]
        self.engine.embed_faces(found, gate=False)
        return [None if f is None or f.embedding is None else np.asarray(f.embedding, np.float32) for f in faces]

    def _embed_image(self, image: np.ndarray) -> np.ndarray | None:
        try:
            vector, _box = self.engine.embed_image(image)
        except InputError:
            return None
        return None if vector is None else np.asarray(vector, np.float32)

    def embed(self, paths: Sequence[Path], degradation: str = "clean",
              label: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, D) float32, zeros where no face) and the ok mask (N,) for ``paths``."""
        task = self.progress.add_task(label or degradation, total=len(paths)) if self.progress else None
        todo = list(dict.fromkeys(str(p) for p in paths if (str(p), degradation) not in self._store))
        if task is not None:
            self.progress.advance(task, len(paths) - len(todo))
        for i in range(0, len(todo), self.CHUNK):
            chunk = [Path(p) for p in todo[i:i + self.CHUNK]]
            started = time.perf_counter()
            vectors = self._compute(chunk, degradation)
            self.seconds += time.perf_counter() - started
            for path, vector in zip(chunk, vectors):
                self._store[(str(path), degradation)] = vector
            self.computed += len(chunk)
            if task is not None:
                self.progress.advance(task, len(chunk))
        vectors = [self._store[(str(p), degradation)] for p in paths]
        dim = next((v.shape[0] for v in vectors if v is not None), EMBEDDING_DIM)
        out = np.zeros((len(paths), dim), np.float32)
        ok = np.array([v is not None for v in vectors], bool)
        for i in np.flatnonzero(ok):
            out[i] = vectors[i]
        return out, ok
