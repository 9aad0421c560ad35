"""Composed scenes: real face photos pasted onto a background at known sizes and positions.

Used by the demo, the golden replay tests, the detector recall measurement and
the benchmarks. Each pasted face's box in the frame is known exactly, because
the face's box in its source photo is measured once and then only scaled and moved.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MARGIN = 0.7  # head margin around the face box, as a fraction of the box size


@dataclass(frozen=True)
class Sprite:
    """A head cut from a photo: pixels, its face box inside them, and who it is."""

    image: np.ndarray
    face_box: tuple[float, float, float, float]
    identity: str


@dataclass(frozen=True)
class Actor:
    """A sprite crossing the frame: face height and centre move linearly over its frames."""

    sprite: Sprite
    first: int
    last: int
    start: tuple[float, float]
    end: tuple[float, float]
    height_start: float
    height_end: float | None = None

    def at(self, seq: int) -> tuple[float, float, float] | None:
        """(cx, cy, face height) at frame ``seq``, or None when off stage."""
        if not self.first <= seq <= self.last:
            return None
        t = 0.0 if self.last == self.first else (seq - self.first) / (self.last - self.first)
        h_end = self.height_end if self.height_end is not None else self.height_start
        return (self.start[0] + t * (self.end[0] - self.start[0]),
                self.start[1] + t * (self.end[1] - self.start[1]),
                self.height_start + t * (h_end - self.height_start))


def cut_sprite(photo: np.ndarray, box: np.ndarray, identity: str) -> Sprite:
    """Cut the head around face ``box`` (xyxy) from ``photo`` with a margin."""
    x1, y1, x2, y2 = [float(v) for v in box]
    m = MARGIN * max(x2 - x1, y2 - y1)
    h, w = photo.shape[:2]
    cx1, cy1 = int(max(0, x1 - m)), int(max(0, y1 - m))
    cx2, cy2 = int(min(w, x2 + m)), int(min(h, y2 + m))
    return Sprite(photo[cy1:cy2, cx1:cx2].copy(), (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1), identity)


def labelled_sprite(engine, photo: np.ndarray | None, identity: str) -> Sprite | None:
    """The head of the person an lfw-dev photo is labelled with: its most central face (LFW
    photos are centred on that person; the most confident face is sometimes a bystander), or
    None when no face is found."""
    face = engine.central_face(photo) if photo is not None else None
    return None if face is None else cut_sprite(photo, face.det.box, identity)


def _feather_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, int(w * 0.46)), max(1, int(h * 0.48))), 0, 0, 360, 1.0, -1)
    k = max(3, (min(h, w) // 8) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)[..., None]


def paste(frame: np.ndarray, sprite: Sprite, cx: float, cy: float, face_height: float) -> np.ndarray:
    """Paste ``sprite`` so its face is ``face_height`` px high centred at (cx, cy); return the box."""
    fx1, fy1, fx2, fy2 = sprite.face_box
    scale = face_height / (fy2 - fy1)
    sh, sw = sprite.image.shape[:2]
    w, h = max(1, round(sw * scale)), max(1, round(sh * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    img = cv2.resize(sprite.image, (w, h), interpolation=interp).astype(np.float32)
    ox = round(cx - (fx1 + fx2) / 2 * scale)
    oy = round(cy - (fy1 + fy2) / 2 * scale)
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(fw, ox + w), min(fh, oy + h)
    if x1 > x0 and y1 > y0:
        sub = img[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        alpha = _feather_mask(h, w)[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (alpha * sub + (1 - alpha) * region).astype(np.uint8)
    return np.array([ox + fx1 * scale, oy + fy1 * scale, ox + fx2 * scale, oy + fy2 * scale], np.float32)


def background(size: tuple[int, int], photo: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """A (width, height) background: a photo cropped to fit, or a textured street-like gradient."""
    w, h = size
    if photo is not None:
        scale = max(w / photo.shape[1], h / photo.shape[0])
        big = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
        y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        return big[y:y + h, x:x + w].copy()
    rng = np.random.default_rng(seed)
    grad = np.linspace(60, 170, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 3), np.float32)
    grad[..., 0] *= 1.1
    noise = cv2.GaussianBlur(rng.normal(0, 18, (h, w, 3)).astype(np.float32), (0, 0), 6)
    return np.clip(grad + noise, 0, 255).astype(np.uint8)


def render(bg: np.ndarray, actors: list[Actor], seq: int) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Frame ``seq`` of a clip and its ground truth: (identity, face box) per visible actor."""
    frame = bg.copy()
    truth = []
    for actor in actors:
        pos = actor.at(seq)
        if pos is not None:
            truth.append((actor.sprite.identity, paste(frame, actor.sprite, *pos)))
    return frame, truth


def write_clip(folder: Path, bg: np.ndarray, actors: list[Actor], n_frames: int,
               quality: int = 92) -> list[list[tuple[str, np.ndarray]]]:
    """Write frames 000000.jpg ... into ``folder``; return the per-frame ground truth."""
    folder.mkdir(parents=True, exist_ok=True)
    truths = []
    for seq in range(n_frames):
        frame, truth = render(bg, actors, seq)
        cv2.imwrite(str(folder / f"{seq:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        truths.append(truth)
    return truths
