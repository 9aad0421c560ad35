"""Inference: the backend gives the known answer on the reference face shipped in the package."""
from __future__ import annotations

from ..modelstore import load_manifest
from ..vision.engine import decode_image
from .base import CheckResult, SelfTestContext, failed, passed, warned
from .reference import MAX_BOX_SHIFT, MIN_COSINE, compare, load_reference

NAME = "inference"


def detector_id(ctx: SelfTestContext) -> str:
    """Model id of the configured detector (name and pinned hash)."""
    return load_manifest()[ctx.cfg.detect.model].model_id


def _one_face(engine, image):
    faces = [f for f in engine.faces(image) if f.reject is None]
    if len(faces) == 1:
        engine.embed_faces(faces)
    return faces


def check(ctx: SelfTestContext) -> CheckResult:
    """Detect and embed the reference face; compare box and embedding with the stored answer."""
    reference = load_reference(ctx.reference_json)
    engine = ctx.engine()
    backend = engine.backend
    faces = _one_face(engine, decode_image(ctx.reference_image))
    if len(faces) != 1:
        return failed(NAME, f"{backend}: found {len(faces)} good faces in the reference image, expected 1",
                      "the inference runtime or a model is broken: reinstall the package, then re-run")
    stored_box = reference["detections"].get(detector_id(ctx))
    if stored_box is None:
        return warned(NAME, f"no stored detection for detector {detector_id(ctx)}",
                      "store this unit's answer: python -m lfr_tools.reference_face --answer (on a "
                      "known-good unit of this model)")
    result = compare(faces[0].det.box, faces[0].embedding, stored_box["box"],
                     reference["embeddings"].get(engine.model_id))
    seen = (f"{backend}: box within {result.box_shift:.1%} of the stored box"
            + ("" if result.cosine is None else f", embedding cosine {result.cosine:.4f} to the stored vector"))
    if not result.ok():
        return failed(NAME, seen + f" (limits {MAX_BOX_SHIFT:.0%}, cosine {MIN_COSINE})",
                      "the model or runtime gives a wrong answer: `appliance models verify`, reinstall "
                      "the package; on a Hailo unit check the HEFs (see the hailo row)")
    if result.cosine is None:
        return warned(NAME, seen + f"; no stored vector for embedder {engine.model_id}",
                      "store this unit's answer: python -m lfr_tools.reference_face --answer")
    return passed(NAME, seen)
