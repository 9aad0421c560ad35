"""The face engine on the Hailo NPU: SCRFD finds faces, ArcFace embeds them, one shared VDevice.

The CPU engine (FaceEngine.from_config) runs BlazeFace over tiles and MobileFaceNet; on the
NPU one SCRFD pass sees each (lores) frame whole and the embedder is ArcFace, whose vectors
carry their own model id (the HEF's), so a watchlist must hold that model's embeddings.
"""
from __future__ import annotations

from ..config import Config
from ..inference import hailo
from .embed import Embedder
from .engine import FaceEngine
from .quality import QualityGate
from .scrfd import SCRFDDetector

BACKEND = hailo.KEY  # the inference backend whose engine this module builds


def open_npu_engine(cfg: Config, settings: hailo.Settings) -> FaceEngine:
    """Open the configured detector and embedder HEFs on the card; ``engine.close()`` releases it
    (the shared VDevice goes with the last network)."""
    detector = hailo.open_model(settings.detector, settings)
    try:
        embedder = hailo.open_model(settings.embedder, settings)
    except Exception:
        detector.close()
        raise
    return FaceEngine(SCRFDDetector(detector, cfg.detect.score_threshold, cfg.detect.nms_iou),
                      Embedder(embedder, embedder.model_id), QualityGate(cfg.quality))
