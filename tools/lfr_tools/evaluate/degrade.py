"""Image degradations that stand in for night, movement, distance and a lossy link.

LFW photos are well lit, sharp and about 110 px face height; a van camera sees
faces at night, walking, at 20-50 px and through a compressed stream. Each
degradation is a deterministic function of (image, seed) on a BGR uint8 image of
the same size, so that results repeat run to run and the cache key is the name.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

LFW_FACE_HEIGHT = 110  # px, face height in a 250x250 lfw-dev image (dataset README)


def low_light(image: np.ndarray, seed: int = 0, gamma: float = 2.2, gain: float = 0.35,
              read_noise: float = 4.0, shot_scale: float = 0.6) -> np.ndarray:
    """Darken like a dusk exposure: gamma curve and gain, then shot and read noise."""
    x = (image.astype(np.float32) / 255.0) ** gamma * gain * 255.0
    rng = np.random.default_rng(seed)
    shot = rng.normal(0.0, 1.0, x.shape).astype(np.float32) * np.sqrt(np.maximum(x, 0.0) * shot_scale)
    noise = rng.normal(0.0, read_noise, x.shape).astype(np.float32)
    return np.clip(x + shot + noise, 0, 255).astype(np.uint8)


def motion_blur(image: np.ndarray, seed: int = 0, length: int = 9, angle_deg: float | None = None) -> np.ndarray:
    """Linear motion blur over ``length`` px (a walker at ~1/30 s), angle drawn from the seed."""
    if angle_deg is None:
        angle_deg = float(np.random.default_rng(seed).uniform(0.0, 180.0))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def small_face(image: np.ndarray, seed: int = 0, face_px: int = 32,
               face_height: int = LFW_FACE_HEIGHT) -> np.ndarray:
    """Keep only the pixels a face ``face_px`` high would have: downscale, then back up."""
    scale = face_px / float(face_height)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def jpeg(image: np.ndarray, seed: int = 0, quality: int = 20) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (a starved video link) and decode again."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _bind(fn: Callable[..., np.ndarray], **kwargs) -> Callable[[np.ndarray, int], np.ndarray]:
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return fn(image, seed, **kwargs)
    apply.__doc__ = f"{fn.__name__} with {kwargs}"
    return apply


# name -> (function of (image, seed), human description). Order is the report's order.
DEGRADATIONS: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], str]] = {
    "low_light": (_bind(low_light), "gamma 2.2, gain 0.35, shot noise + read noise sigma 4"),
    "motion_blur": (_bind(motion_blur, length=9), "9 px linear motion blur, random angle"),
    "small_face_48": (_bind(small_face, face_px=48), "face downscaled to 48 px high and back"),
    "small_face_32": (_bind(small_face, face_px=32), "face downscaled to 32 px high and back"),
    "small_face_24": (_bind(small_face, face_px=24), "face downscaled to 24 px high and back"),
    "jpeg_q20": (_bind(jpeg, quality=20), "JPEG re-encoded at quality 20"),
}


def apply(name: str, image: np.ndarray, seed: int = 0) -> np.ndarray:
    """Apply degradation ``name`` (a key of DEGRADATIONS, or "clean") to a BGR image."""
    if name == "clean":
        return image
    return DEGRADATIONS[name][0](image, seed)
