"""The face engine: detect -> quality gate -> landmarks -> align -> embed, for frames and images.

Built once from the config with the chosen inference backend. ``faces`` serves
the pipeline; ``enrol_image`` and ``embed_image`` serve watchlist building,
evaluation (`appliance eval`, `appliance embed`) and the technician's ``detect``
command with the very same stages.

Two alignments: the detector's keypoints align every face for the quality gate
(sharpness, exposure) in the analysis stage; a face chosen for embedding then gets
the face mesh's five points (eye centres, nose tip, mouth corners) on the ArcFace
template, the mesh's pose check, and is embedded with its mirror image (the
ablation in docs/accuracy.md measured each step).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import imagefile, inference
from ..config import Config
from ..errors import ApplianceError, InputError
from ..modelstore import load_manifest
from ..timing import StageTimes
from .align import align
from .detect import Detection, FaceDetector, Net, SearchSettings
from .detector import Detector, scaled
from .embed import Embedder
from .lowlight import FrameLift, steady_mean
from .mesh import MESH_MODEL, FaceMesh
from .motion import MotionMap
from .plan import PlanSettings, SearchPlan
from .quality import QualityGate, yaw_of

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
    frame: np.ndarray | None = field(default=None, repr=False)  # the frame it is in, until embedded
    steady: list[np.ndarray] = field(default_factory=list, repr=False)  # earlier dark crops, until embedded


@dataclass
class Enrolment:
    """The reference embedding and thumbnail of one enrolment image."""

    embedding: np.ndarray
    model_id: str
    thumbnail_jpeg: bytes
    box: list[float]
    quality: dict


def decode_image(path: str | Path) -> np.ndarray:
    """Read an image file as a BGR uint8 array; InputError if unreadable, empty or over the bounds.

    The size and the header's pixel count are checked before decoding (imagefile.py),
    so a decompression bomb is refused without being decoded.
    """
    try:
        return imagefile.read_file(path, cv2.IMREAD_COLOR)
    except imagefile.ImageRefused as exc:
        raise InputError(f"cannot read image {path}: {exc}",
                         fix="give a readable JPEG, PNG, BMP or WebP file of at most "
                             f"{imagefile.MAX_IMAGE_PIXELS:,} pixels") from None


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

    def __init__(self, detector: Detector, embedder: Embedder, gate: QualityGate,
                 mesh: FaceMesh | None = None, times: StageTimes | None = None,
                 lift: FrameLift | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.gate = gate
        self.mesh = mesh
        self.lift = lift or FrameLift()  # the detector's view of a dark frame (lowlight.py)
        self.times = times or StageTimes()

    @classmethod
    def from_config(cls, cfg: Config) -> "FaceEngine":
        """Build the engine from the config's [inference], [detect] and [quality] sections."""
        backend, settings = inference.choose(cfg.inference)
        from . import npu  # noqa: PLC0415 - npu imports this module

        if backend.KEY == npu.BACKEND:  # SCRFD + ArcFace on the NPU
            return npu.open_npu_engine(cfg, settings)
        times = StageTimes()
        plan = search_plan(cfg, times)
        motion = MotionMap() if plan is not None and plan.settings.motion_boost_s > 0 else None
        detector = FaceDetector([_worker_nets(backend, settings, cfg) for _ in range(cfg.detect.workers)],
                                search_settings(cfg), plan, motion)
        embedder = Embedder(backend.open_model(EMBEDDER, settings), load_manifest()[EMBEDDER].model_id, flip=True)
        mesh = FaceMesh(backend.open_model(MESH_MODEL, settings))
        d = cfg.detect
        return cls(detector, embedder, QualityGate(cfg.quality), mesh, times,
                   FrameLift(d.lowlight_lift_below, d.lowlight_max_gain))

    @property
    def backend(self) -> str:
        """Key of the inference backend running the models."""
        return self.embedder.model.backend

    def models(self) -> list:
        """Every loaded model, once each."""
        found = [*self.detector.models(), self.embedder.model]
        found += [self.mesh.model] if self.mesh is not None else []
        return list({id(m): m for m in found}.values())

    def close(self) -> None:
        """Stop the detector's workers and release every model's runtime resources."""
        if isinstance(self.detector, FaceDetector):
            self.detector.pool.close()
        for model in self.models():
            model.close()

    def search_counters(self) -> dict[str, int]:
        """The search plan's counters and coverage figures (empty for a detector without a plan)."""
        plan = self.detector.plan if isinstance(self.detector, FaceDetector) else None
        return dict(plan.counters) if plan is not None else {}

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
                lores: np.ndarray | None = None, lores_scale: float = 1.0, paced: bool = True) -> list[Face]:
        """Detect, align and gate the faces of a frame, without embedding them.

        ``seq`` and ``focus`` (predicted track boxes) select the stream search plan
        of :meth:`FaceDetector.detect`; without them the whole frame is searched.
        With ``lores`` (the camera's smaller stream of the same exposure, ``lores_scale``
        main pixels per lores pixel) faces are found on lores and cropped from ``frame``.
        ``paced`` False (an unpaced replay) plans the search at the nominal frame rate.
        """
        frame = as_bgr(frame)
        with self.times.stage("detect"):
            if lores is None:
                dets = self.detector.detect(self.lift(frame), seq, focus, paced)
            else:
                small = [np.asarray(b) / lores_scale for b in focus]
                dets = scaled(self.detector.detect(self.lift(as_bgr(lores)), seq, small, paced), lores_scale)
        faces = []
        with self.times.stage("align_quality"):
            for det in dets:
                aligned = align(frame, det.keypoints)
                reason, quality = self.gate.check(det, aligned, self.lift.gain)
                keep = reason is None
                faces.append(Face(det, quality, reason, aligned if keep else None, frame=frame if keep else None))
        return faces

    def refine(self, face: Face, gate: bool = True) -> None:
        """Re-align a face on the mesh's five points (kept on the detector's keypoints when the
        mesh finds no face); with ``gate``, a face the mesh shows turned away is rejected ('pose')."""
        if self.mesh is None or face.frame is None:
            return
        found = self.mesh.points(face.frame, face.det.box, face.det.keypoints)
        if found is None:
            return
        face.quality["yaw"] = round(yaw_of(found.points), 3)
        if gate and self.gate.pose_reject(face.quality):
            face.reject, face.aligned = "pose", None
            return
        face.aligned = align(face.frame, found.points, "lsq")

    def embed_faces(self, faces: list[Face], gate: bool = True) -> None:
        """Refine, then embed the faces that passed the gate (a face the mesh rejects gets none); a face
        with earlier dark crops of its track (``steady``) is embedded as their mean with its own."""
        keypoint_crops = {id(f): f.aligned for f in faces if f.steady}  # aligned as the earlier crops were
        for face in faces:
            self.refine(face, gate)
        ready = [f for f in faces if f.reject is None and f.aligned is not None]
        if ready:
            for face in ready:
                if face.steady:
                    face.quality["steady_frames"] = len(face.steady) + 1
            crops = [steady_mean([*f.steady, keypoint_crops[id(f)]]) if f.steady else f.aligned for f in ready]
            for face, vec in zip(ready, self.embedder.embed(np.stack(crops))):
                face.embedding = vec
        for face in faces:
            face.frame = None  # the frame is not kept past embedding
            for crop in face.steady:  # nor the earlier crops it was averaged with
                crop.fill(0)
            face.steady = []

    def central_face(self, image: np.ndarray) -> Face | None:
        """The most central face of a single image, aligned on the detector's keypoints (no gate)."""
        image = as_bgr(image)
        det = most_central(self.detector.detect(image), image)
        if det is None:
            return None
        return Face(det, {}, None, align(image, det.keypoints), frame=image)

    def embed_image(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Embedding and box of the most central face (no quality gate); (None, None) if none."""
        face = self.central_face(image)
        if face is None:
            return None, None
        self.embed_faces([face], gate=False)
        return face.embedding, face.det.box

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


def most_central(dets: list[Detection], image: np.ndarray) -> Detection | None:
    """The detection whose box centre is nearest the image's centre (None when there is none)."""
    centre = np.array(image.shape[1::-1], np.float32) / 2
    return min(dets, key=lambda d: float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre)), default=None)


def _worker_nets(backend, settings, cfg: Config) -> tuple[Net, Net]:
    """One detector worker's own copies of the full-range net and the focus net."""
    d = cfg.detect
    net = Net.of(backend.open_model(d.model, settings), d.model)
    if d.focus_tracks and d.model != FOCUS_MODEL:
        return net, Net.of(backend.open_model(FOCUS_MODEL, settings), FOCUS_MODEL)
    return net, net


def search_settings(cfg: Config) -> SearchSettings:
    """The detector's [detect] search keys."""
    d = cfg.detect
    return SearchSettings(d.score_threshold, d.nms_iou, tuple(d.tile_sizes), d.tile_overlap, d.whole_frame,
                          d.discovery_windows, d.focus_merge_scale if d.focus_tracks else 0.0)


def search_plan(cfg: Config, times: StageTimes) -> SearchPlan | None:
    """The deadline plan of [detect] (None: the fixed plan); its reserve is the embed/match stage's
    recent CPU time, read from ``times``."""
    d = cfg.detect
    if d.search_plan != "deadline":
        return None
    settings = PlanSettings(d.budget_fraction, d.frame_budget_ms / 1000, 1 / d.nominal_fps, d.discovery_windows,
                            d.workers, available_cpus(), d.coverage_target_s, d.motion_boost_s)
    return SearchPlan(settings, lambda: embed_reserve_s(times))


def embed_reserve_s(times: StageTimes) -> float:
    """The CPU seconds the embed/match stage recently took a frame: CPU rather than wall time,
    since its wall time grows with the very detection work it is reserved from."""
    return (times.recent_ms("embed", cpu=True) + times.recent_ms("match_decide", cpu=True)) / 1000


def available_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thumbnail(image: np.ndarray, det: Detection, size: int = THUMBNAIL_PX) -> bytes:
    """A small JPEG of the face with some margin (officers compare it with the probe)."""
    x1, y1, x2, y2 = det.box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    box = [int(max(0, cx - half)), int(max(0, cy - half)), int(min(w, cx + half)), int(min(h, cy + half))]
    crop = cv2.resize(image[box[1]:box[3], box[0]:box[2]], (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()
