"""Building composed clips from lfw-dev identities for golden and recall tests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from lfr_tools.scenes import Sprite, labelled_sprite


def lfw_people(lfw: Path, min_images: int = 1) -> list[Path]:
    """Identity folders with at least ``min_images`` photos, in a stable order."""
    people = [p for p in sorted(lfw.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) >= min_images]
    return sorted(people, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())


def sprite_from(engine, photo_path: Path, identity: str) -> Sprite | None:
    """The head of the person an LFW photo is labelled with (its most central face), or None."""
    return labelled_sprite(engine, cv2.imread(str(photo_path)), identity)


def two_photo_cast(engine, lfw: Path, n: int) -> list[tuple[str, "np.ndarray", Sprite]]:
    """``n`` people with two usable photos: (name, enrolment photo, sprite from the other photo)."""
    import pytest  # noqa: PLC0415

    people = []
    for person in lfw_people(lfw, min_images=2):
        photos = sorted(person.glob("*.jpg"))
        sprite = sprite_from(engine, photos[1], person.name)
        enrol = cv2.imread(str(photos[0]))
        if sprite is None or engine.embed_image(enrol)[0] is None:
            continue
        people.append((person.name, enrol, sprite))
        if len(people) == n:
            return people
    pytest.fail("lfw-dev has too few people with two usable photos")


def cast_watchlist(engine, cast, enrolled, deployment: str = "golden"):
    """A watchlist of the cast members ``enrolled`` (indices), enrolled from their first photo."""
    from appliance.pipeline.match import Watchlist  # noqa: PLC0415

    refs = [cast[i][0] for i in enrolled]
    vecs = [engine.enrol_image(cast[i][1]).embedding for i in enrolled]
    matrix = np.stack(vecs) if vecs else np.zeros((0, 192), np.float32)
    return Watchlist(refs, matrix, engine.model_id, [{"subject_ref": r} for r in refs], deployment)
