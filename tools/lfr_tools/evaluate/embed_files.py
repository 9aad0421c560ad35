"""`appliance embed`: one embedding per image file, for auditors' and researchers' own protocols.

The .npz holds ``paths`` (str), ``ok`` (bool: a face was found), ``embeddings``
(float32, one row per path, zeros where not ok) and ``model_id``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from appliance.errors import InputError
from lfr_tools.evaluate.embedding import EmbeddingCache, ImageEmbedder, progress_bar
from lfr_tools.evaluate.protocol import IMAGE_SUFFIXES


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found by walking folders, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist", fix="pass existing image files or folders")
    if not found:
        raise InputError("no image files found", fix=f"pass files or folders holding {sorted(IMAGE_SUFFIXES)}")
    return found


def embed_files(paths: Iterable[str | Path], out: Path, engine: ImageEmbedder,
                progress: bool = True) -> dict:
    """Embed every image and write the .npz; return counts."""
    images = collect_images(paths)
    out = Path(out)
    if out.suffix != ".npz":
        raise InputError(f"{out}: the output must be a .npz file", fix="pass --out FILE.npz")
    with progress_bar(progress) as bar:
        vectors, ok = EmbeddingCache(engine, bar).embed(images, "clean", "embed")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, paths=np.array([str(p) for p in images], dtype=str), ok=ok,
             embeddings=vectors.astype(np.float32), model_id=np.array(engine.model_id))
    return {"images": len(images), "faces": int(ok.sum()), "out": str(out), "model_id": engine.model_id}
