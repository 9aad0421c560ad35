"""Make the self-test's reference face: a small crop of a registry photo and its known answer.

``appliance selftest`` runs the unit's own detector and embedder on the reference face
shipped in the runtime package (``appliance/data/selftest/``) and compares the answer with
the one stored here: the detection box within a few pixels, the embedding within a cosine
tolerance of the stored vector. The photo is face_recognition 1.3.0's
``tests/test_images/obama.jpg`` (PyPI sdist, MIT licence, pinned in deploy/demo/assets.toml),
cropped around the face and scaled down to a few kilobytes.

    python -m lfr_tools.reference_face            # (re)make the crop and the answer
    python -m lfr_tools.reference_face --answer   # keep the crop, store this backend's answer

Run ``--answer`` on a unit whose embedder has another model id (a Hailo HEF) to add the
vector for that model; the crop itself must not change once units carry it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from appliance import inference
from appliance.config import Config
from appliance.modelstore import load_manifest
from appliance.selftest.reference import REFERENCE_IMAGE, REFERENCE_JSON, load_reference
from appliance.vision.engine import FaceEngine, decode_image
from .demo import fetch_photos

SOURCE = {"photo": "obama", "package": "face_recognition==1.3.0",
          "member": "face_recognition-1.3.0/tests/test_images/obama.jpg", "licence": "MIT (face_recognition 1.3.0)"}
CROP_MARGIN = 0.8  # of the face box on every side
CROP_PX = 176
JPEG_QUALITY = 90


def crop_reference(engine: FaceEngine, photo: np.ndarray) -> np.ndarray:
    """A square crop around the most confident face, CROP_PX on a side."""
    det = max(engine.detector.detect(photo), key=lambda d: d.score)
    x1, y1, x2, y2 = det.box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * CROP_MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    square = photo[top:top + int(side), left:left + int(side)]
    return cv2.resize(square, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA)


def answer(engine: FaceEngine, image: np.ndarray) -> dict:
    """What the engine sees in the reference image: the face's box and score, and its embedding."""
    faces = [f for f in engine.faces(image) if f.reject is None]
    if len(faces) != 1:
        raise SystemExit(f"the reference image must show exactly one good face, found {len(faces)}")
    engine.embed_faces(faces)
    face = faces[0]
    return {"box": [round(float(v), 2) for v in face.det.box], "score": round(float(face.det.score), 4),
            "embedding": [round(float(v), 6) for v in face.embedding]}


NUMBER_LIST = re.compile(r"\[([-+0-9.eE,\s]+)\]")


def _compact_lists(text: str) -> str:
    """Lists of numbers on one line each (the file stays readable and diffable)."""
    return NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def write_reference(engine: FaceEngine, detector_id: str, image_path: Path, json_path: Path,
                    remake_crop: bool) -> dict:
    """Write the crop (when asked) and add this engine's answer to the reference JSON."""
    if remake_crop:
        photo = decode_image(fetch_photos(Path(tempfile.mkdtemp(prefix="reference-")))[SOURCE["photo"]])
        ok, jpeg = cv2.imencode(".jpg", crop_reference(engine, photo), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        image_path.write_bytes(jpeg.tobytes())
    data = load_reference(json_path) if json_path.exists() and not remake_crop \
        else {"detections": {}, "embeddings": {}}
    seen = answer(engine, decode_image(image_path))
    data.update({"source": SOURCE, "image": image_path.name,
                 "image_sha256": hashlib.sha256(image_path.read_bytes()).hexdigest()})
    data["detections"][detector_id] = {"box": seen["box"], "score": seen["score"]}
    data["embeddings"][engine.model_id] = seen["embedding"]
    json_path.write_text(_compact_lists(json.dumps(data, indent=1)) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    """CLI: remake the reference crop and answer, or add this backend's answer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answer", action="store_true", help="keep the crop; store this backend's answer")
    parser.add_argument("--backend", default=inference.AUTO, help=f"inference backend (default {inference.AUTO})")
    args = parser.parse_args(argv)
    cfg = Config.model_validate({"inference": {"backend": args.backend}})
    REFERENCE_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    detector = load_manifest()[cfg.detect.model].model_id
    data = write_reference(FaceEngine.from_config(cfg), detector, REFERENCE_IMAGE, REFERENCE_JSON, not args.answer)
    print(f"{REFERENCE_IMAGE} ({REFERENCE_IMAGE.stat().st_size} bytes); detections for "
          f"{', '.join(data['detections'])}; embeddings for {', '.join(data['embeddings'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
