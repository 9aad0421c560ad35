"""Embed: MobileFaceNet on aligned 112x112 faces -> L2-normalised 192-D vectors.

The TFLite graph has a fixed batch of two, so faces are fed in pairs (the last
pair padded). With flip test-time augmentation a face and its mirror image form
one pair, so a flipped face costs one call, as two plain faces do; the two
outputs are summed before normalising. Every vector leaves with the model id
of the pinned weights.
"""
from __future__ import annotations

import numpy as np

from ..inference.base import Model


def preprocess(faces_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 (N, 112, 112, 3) -> RGB float32 scaled as (x - 127.5) / 128."""
    return (faces_bgr[..., ::-1].astype(np.float32) - 127.5) / 128.0


def with_mirrors(faces_bgr: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (2N, H, W, 3): each face followed by its left-right mirror image."""
    faces = np.asarray(faces_bgr)
    return np.stack([faces, faces[:, :, ::-1]], axis=1).reshape(-1, *faces.shape[1:])


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder:
    """MobileFaceNet through any inference backend; ``flip`` adds the mirror image of each face."""

    def __init__(self, model: Model, model_id: str, flip: bool = False) -> None:
        self.model = model
        self.model_id = model_id
        self.flip = flip
        self.batch = int(model.input_shape[0])
        self.dim = 0

    def raw(self, faces_bgr: np.ndarray) -> np.ndarray:
        """The graph's un-normalised outputs (N, D) for aligned faces, in batches of the graph."""
        faces = np.asarray(faces_bgr)
        # a pixel-input model (a Hailo HEF) normalises inside the network: it takes RGB uint8
        x = np.ascontiguousarray(faces[..., ::-1]) if self.model.pixels else preprocess(faces)
        n, pad = len(x), (-len(x)) % self.batch
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        out = np.concatenate([self.model.run(x[i:i + self.batch])[0] for i in range(0, len(x), self.batch)])
        self.dim = out.shape[1]
        return out[:n]

    def embed(self, faces_bgr: np.ndarray) -> np.ndarray:
        """Embed aligned faces (N, 112, 112, 3); returns (N, D) L2-normalised float32."""
        n = len(faces_bgr)
        if n == 0:
            return np.zeros((0, self.dim or 192), np.float32)
        if not self.flip:
            return normalise(self.raw(faces_bgr))
        out = self.raw(with_mirrors(faces_bgr))
        return normalise(out[0::2] + out[1::2])
