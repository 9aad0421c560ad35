"""The face engine: detect -> quality gate -> align -> embed, for frames and single images.

Built once from the config with the chosen inference backend. ``faces`` serves
the pipeline; ``enrol_image`` and ``embed_image`` serve watchlist building,
evaluation and the technician's ``detect`` command with the very same stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import inference
from ..config import Config
from ..errors import ApplianceError, InputError
from ..modelstore import load_manifest
from ..timing import StageTimes
from .align import align
from .detect import Detection, FaceDetector, Net
from .detector import Detector, scaled
from .embed import Embedder
from .quality import QualityGate

EMBEDDER = "mobilefacenet"
FOCUS_MODEL = "blazeface-short"
THUMBNAIL_PX = 96


class EnrolmentReject(ApplianceError):
    """An enrolment image was refused (no face, several faces, or low quality)."""

    exit_code = 4

    def __init__(self, reason: str) -> None:
        super().__init__(f"enrolment refused: {reason}", fix="use a recent, sharp, frontal photo of one person")
        self.reason = reason


@dataclass
class Face:
    """One detected face in one frame; lives only until the frame is finished."""

    det: Detection
    quality: dict
    reject: str | None
    aligned: np.ndarray | None = field(default=None, repr=False)
    embedding: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Enrolment:
    """The reference embedding and thumbnail of one enrolment image."""

    embedding: np.ndarray
    model_id: str
    thumbnail_jpeg: bytes
    box: list[float]
    quality: dict


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as a BGR uint8 array; InputError if unreadable or empty."""
    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None or image.size == 0:
        raise InputError(f"cannot read image {path}", fix="give a readable JPEG or PNG file")
    return image


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """Accept grayscale, BGRA or BGR uint8 frames; refuse empty ones."""
    if frame is None or frame.size == 0 or min(frame.shape[:2]) < 8:
        raise InputError("empty or tiny frame", fix="check the camera or the replay source")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


class FaceEngine:
    """Detector, quality gate, aligner and embedder on one inference backend."""

    def __init__(self, detector: Detector, embedder: Embedder, gate: QualityGate) -> None:
        self.detector = detector
        self.embedder = embedder
        self.gate = gate
        self.times = StageTimes()

    @classmethod
    def from_config(cls, cfg: Config) -> "FaceEngine":
        """Build the engine from the config's [inference], [detect] and [quality] sections."""
        backend, settings = inference.choose(cfg.inference)
        from . import npu  # noqa: PLC0415 - npu imports this module

        if backend.KEY == npu.BACKEND:  # SCRFD + ArcFace on the NPU
            return npu.open_npu_engine(cfg, settings)
        d = cfg.detect
        net = Net.of(backend.open_model(d.model, settings), d.model)
        focus = None
        if d.focus_tracks and d.model != FOCUS_MODEL:
            focus = Net.of(backend.open_model(FOCUS_MODEL, settings), FOCUS_MODEL)
        detector = FaceDetector(net, d.score_threshold, d.nms_iou, tuple(d.tile_sizes), d.tile_overlap,
                                d.whole_frame, d.discovery_windows, focus)
        embedder = Embedder(backend.open_model(EMBEDDER, settings), load_manifest()[EMBEDDER].model_id)
        return cls(detector, embedder, QualityGate(cfg.quality))

    @property
    def backend(self) -> str:
        """Key of the inference backend running the models."""
        return self.embedder.model.backend

    def models(self) -> list:
        """Every loaded model, once each."""
        d = self.detector  # BlazeFace holds its models in nets, SCRFD holds one model
        found = [getattr(d, "model", None), getattr(getattr(d, "net", None), "model", None),
                 getattr(getattr(d, "focus_net", None), "model", None), self.embedder.model]
        return list({id(m): m for m in found if m is not None}.values())

    def close(self) -> None:
        """Release every model's runtime resources."""
        for model in self.models():
            model.close()

    def __enter__(self) -> "FaceEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_id(self) -> str:
        """Id of the embedding model; every vector and watchlist carries it."""
        return self.embedder.model_id

    def faces(self, frame: np.ndarray) -> list[Face]:
        """Detect, gate, align and embed every face in a frame (rejected faces get no embedding)."""
        faces = self.analyse(frame)
        with self.times.stage("embed"):
            self.embed_faces([f for f in faces if f.reject is None])
        return faces

    def analyse(self, frame: np.ndarray, seq: int | None = None, focus: list | tuple = (),
                lores: np.ndarray | None = None, lores_scale: float = 1.0) -> list[Face]:
        """Detect, align and gate the faces of a frame, without embedding them.

        ``seq`` and ``focus`` (predicted track boxes) select the stream search plan
        of :meth:`FaceDetector.detect`; without them the whole frame is searched.
        With ``lores`` (the camera's smaller stream of the same exposure, ``lores_scale``
        main pixels per lores pixel) faces are found on lores and cropped from ``frame``.
        """
        frame = as_bgr(frame)
        with self.times.stage("detect"):
            if lores is None:
                dets = self.detector.detect(frame, seq, focus)
            else:
                small = [np.asarray(b) / lores_scale for b in focus]
                dets = scaled(self.detector.detect(as_bgr(lores), seq, small), lores_scale)
        faces = []
        with self.times.stage("align_quality"):
            for det in dets:
                aligned = align(frame, det.keypoints)
                reason, quality = self.gate.check(det, aligned)
                faces.append(Face(det, quality, reason, aligned if reason is None else None))
        return faces

    def embed_faces(self, faces: list[Face]) -> None:
        """Fill in the embeddings of faces that passed the gate, in one batched call."""
        if faces:
            vectors = self.embedder.embed(np.stack([f.aligned for f in faces]))
            for face, vec in zip(faces, vectors):
                face.embedding = vec

    def embed_image(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Embedding and box of the most central face (no quality gate); (None, None) if none."""
        image = as_bgr(image)
        dets = self.detector.detect(image)
        if not dets:
            return None, None
        centre = np.array(image.shape[1::-1], np.float32) / 2
        det = min(dets, key=lambda d: float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre)))
        return self.embedder.embed(align(image, det.keypoints)[None])[0], det.box

    def enrol_image(self, image: np.ndarray) -> Enrolment:
        """Reference embedding of the one face in an enrolment image, or EnrolmentReject."""
        faces = self.faces(image)
        if not faces:
            raise EnrolmentReject("no_face")
        if len(faces) > 1:
            raise EnrolmentReject("several_faces")
        face = faces[0]
        if face.reject:
            raise EnrolmentReject(f"low_quality:{face.reject}")
        return Enrolment(face.embedding, self.model_id, thumbnail(image, face.det),
                         [round(float(v), 1) for v in face.det.box], face.quality)


def thumbnail(image: np.ndarray, det: Detection, size: int = THUMBNAIL_PX) -> bytes:
    """A small JPEG of the face with some margin (officers compare it with the probe)."""
    x1, y1, x2, y2 = det.box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    box = [int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half))]
    crop = cv2.resize(image[box[1]:box[3], box[0]:box[2]], (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()
