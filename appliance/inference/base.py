"""What every inference backend provides: its settings and the model it opens."""
from __future__ import annotations

from typing import Protocol

import numpy as np
from pydantic import Field

from ..settings import Section


class BackendSettings(Section):
    """Settings every inference backend has; a backend subclasses it with its own keys and a
    ``backend: Literal[KEY]`` tag (the config's ``[inference]`` section is their union)."""

    models_dir: str = Field("models/cache", description="weights; relative paths are under the working directory")


class Model(Protocol):
    """A loaded network: NHWC float32 in, the source graph's outputs out, in order."""

    input_shape: tuple[int, ...]
    backend: str
    pixels: bool  # True: the network takes RGB uint8 pixels and normalises inside (a Hailo HEF)
    name: str  # the weights it runs (a file stem, or a HEF's network name)
    file_sha256: str  # of the weights file it was loaded from (recorded in the audit log at start)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch of exactly ``input_shape`` and return the outputs."""
        ...

    def close(self) -> None:
        """Release the runtime's resources (interpreter, session, device handles)."""
        ...
