"""Embeddings of image files through the unit's own engine, cached per (image, degradation).

Each image is decoded, optionally degraded (seeded by its path, so repeatable),
and given to ``engine.embed_image``: the most central face, detected on the
whole image, aligned and embedded exactly as the unit does it.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import InputError
from . import degrade

EMBEDDING_DIM = 192


class ImageEmbedder(Protocol):
    """What the evaluation needs of a FaceEngine."""

    model_id: str

    def embed_image(self, image_bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Embedding and box of the most central face, or (None, None)."""
        ...


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8; InputError naming the file when it cannot."""
    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"cannot read image {path}", fix="remove the file or replace it with a JPEG/PNG")
    return image


def path_seed(path: Path) -> int:
    """A stable per-image seed for the random parts of a degradation."""
    return int.from_bytes(hashlib.sha256(os.fsencode(str(Path(path).name))).digest()[:4], "big")


def progress_bar(enabled: bool = True) -> Progress:
    """A rich progress display on stderr (silent when disabled)."""
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
                    transient=False)


class EmbeddingCache:
    """Embeds images once per (path, degradation) within one run."""

    def __init__(self, engine: ImageEmbedder, progress: Progress | None = None) -> None:
        self.engine = engine
        self.progress = progress
        self._store: dict[tuple[str, str], np.ndarray | None] = {}
        self.computed = 0

    def embed_one(self, path: Path, degradation: str = "clean") -> np.ndarray | None:
        """The embedding of one image under one degradation (None: no face found)."""
        key = (str(path), degradation)
        if key not in self._store:
            image = degrade.apply(degradation, read_image(path), path_seed(path))
            vector, _box = self.engine.embed_image(image)
            self._store[key] = None if vector is None else np.asarray(vector, np.float32)
            self.computed += 1
        return self._store[key]

    def embed(self, paths: Sequence[Path], degradation: str = "clean",
              label: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, D) float32, zeros where no face) and the ok mask (N,) for ``paths``."""
        task = self.progress.add_task(label or degradation, total=len(paths)) if self.progress else None
        vectors = []
        for path in paths:
            vectors.append(self.embed_one(path, degradation))
            if task is not None:
                self.progress.advance(task)
        dim = next((v.shape[0] for v in vectors if v is not None), EMBEDDING_DIM)
        out = np.zeros((len(paths), dim), np.float32)
        ok = np.array([v is not None for v in vectors], bool)
        for i in np.flatnonzero(ok):
            out[i] = vectors[i]
        return out, ok
