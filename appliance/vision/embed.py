"""Embed: MobileFaceNet on aligned 112x112 faces -> L2-normalised 192-D vectors.

The TFLite graph has a fixed batch of two, so faces are fed in pairs (the last
pair padded). Every vector leaves with the model id of the pinned weights.
"""
from __future__ import annotations

import numpy as np

from ..inference.base import Model


def preprocess(faces_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 (N, 112, 112, 3) -> RGB float32 scaled as (x - 127.5) / 128."""
    return (faces_bgr[..., ::-1].astype(np.float32) - 127.5) / 128.0


class Embedder:
    """MobileFaceNet through any inference backend."""

    def __init__(self, model: Model, model_id: str) -> None:
        self.model = model
        self.model_id = model_id
        self.batch = int(model.input_shape[0])
        self.dim = 0

    def embed(self, faces_bgr: np.ndarray) -> np.ndarray:
        """Embed aligned faces (N, 112, 112, 3); returns (N, D) L2-normalised float32."""
        n = len(faces_bgr)
        if n == 0:
            return np.zeros((0, self.dim or 192), np.float32)
        faces = np.asarray(faces_bgr)
        # a pixel-input model (Hailo HEF) normalises inside the network: it takes RGB uint8
        x = np.ascontiguousarray(faces[..., ::-1]) if getattr(self.model, "pixels", False) else preprocess(faces)
        pad = (-n) % self.batch
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        out = np.concatenate([self.model.run(x[i:i + self.batch])[0]
                              for i in range(0, len(x), self.batch)])[:n]
        self.dim = out.shape[1]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)
