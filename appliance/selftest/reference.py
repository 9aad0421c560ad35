"""The reference face shipped in the package and the answer the unit's models must give on it.

``reference-face.jpg`` is a 176 px crop of face_recognition 1.3.0's
``tests/test_images/obama.jpg`` (MIT licence; pinned in deploy/demo/assets.toml), made by
``python -m lfr_tools.reference_face``. ``reference-face.json`` holds the detector's box and
score for each detector model and the embedding for each embedder model id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

DATA = Path(__file__).resolve().parent.parent / "data" / "selftest"
REFERENCE_IMAGE = DATA / "reference-face.jpg"
REFERENCE_JSON = DATA / "reference-face.json"
MIN_COSINE = 0.99      # LiteRT and ONNX Runtime agree to ~1e-5; a broken runtime or model is far off
MAX_BOX_SHIFT = 0.05   # of the reference box's size, on any edge


def load_reference(path: Path = REFERENCE_JSON) -> dict:
    """The stored answers; InputError when the file is missing or not the expected shape."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"self-test reference {path} cannot be read: {exc}",
                         fix="reinstall the lfr-appliance package (the file ships with it)") from None
    if not isinstance(data, dict) or not isinstance(data.get("detections"), dict) \
            or not isinstance(data.get("embeddings"), dict):
        raise InputError(f"self-test reference {path} is not a reference answer file",
                         fix="reinstall the lfr-appliance package")
    return data


@dataclass(frozen=True)
class Comparison:
    """How far the unit's answer is from the stored one."""

    box_shift: float        # largest edge difference, as a fraction of the reference box size
    cosine: float | None    # None when there is no stored vector for this embedder model

    def ok(self) -> bool:
        """True when box and embedding are both within tolerance."""
        return self.box_shift <= MAX_BOX_SHIFT and (self.cosine is None or self.cosine >= MIN_COSINE)


def compare(box: list[float], embedding: np.ndarray, ref_box: list[float], ref_vector: list[float] | None) -> Comparison:
    """Compare a detection box and embedding with the stored ones."""
    ref = np.asarray(ref_box, dtype=np.float64)
    size = max(ref[2] - ref[0], ref[3] - ref[1])
    shift = float(np.max(np.abs(np.asarray(box, dtype=np.float64) - ref)) / size)
    if ref_vector is None:
        return Comparison(shift, None)
    a, b = np.asarray(embedding, dtype=np.float64), np.asarray(ref_vector, dtype=np.float64)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return Comparison(shift, cosine)
