"""The model interface every inference backend provides."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Model(Protocol):
    """A loaded network: NHWC float32 in, the source graph's outputs out, in order."""

    input_shape: tuple[int, ...]
    backend: str

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch of exactly ``input_shape`` and return the outputs."""
        ...
