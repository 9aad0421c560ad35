"""Crowd clips: seed-fixed walkers from lfw-dev crossing a wide frame, with exact ground truth.

``compose_crowd(lfw_dir, out_dir, shape, seed)`` writes (or finds, cached) one clip folder,
its ground truth (``truth.json``: per walker its identity, whether it is listed, and per frame
its face box, whether the face is wholly in frame and unoccluded) and the listed people's
enrolment photos. A listed person walks in one lfw-dev photo and is enrolled from another
(as tests/scene_helpers.py does); everyone else is a distractor with one photo.

Walkers cross left to right or right to left; a farther walker (smaller face) is higher in
the frame, slower on screen, and pasted first, so nearer walkers occlude it. Night shapes
scale the rendered frame's brightness and add seed-fixed sensor noise (shot plus read noise)
before JPEG coding, as a dark sensor frame with gain would look.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from lfr_tools.scenes import Actor, Sprite, background, labelled_sprite, paste

VERSION = 2  # bump when the composition changes: cached clips of another version are rebuilt
FPS = 15.0
WALK_SPEED = 5.0  # on-screen speed in face heights per second (~1.1 m/s across, ~0.22 m per face)
OCCLUDED = 0.25  # a face this much covered by nearer heads is not visible
NIGHT_READ_NOISE = 2.5  # grey levels, sensor read noise at night gain
NIGHT_SHOT_GAIN = 0.6  # shot-noise variance per grey level of signal


@dataclass(frozen=True)
class CrowdShape:
    """What a crowd clip looks like: frame size, length, walkers, listed people, light."""

    name: str
    size: tuple[int, int]
    seconds: float
    walkers: int
    listed: int
    face_px: tuple[int, int]
    brightness: float = 1.0  # 1.0 day; night x0.35 with sensor noise
    noise: bool = False

    @property
    def frames(self) -> int:
        """Frames in the clip at FPS."""
        return round(self.seconds * FPS)

    @property
    def night(self) -> bool:
        """True for a darkened, noisy clip."""
        return self.brightness < 1.0


SHAPES = {
    "day-1080p": CrowdShape("day-1080p", (1920, 1080), 10.0, 40, 8, (28, 64)),
    "night-1080p": CrowdShape("night-1080p", (1920, 1080), 10.0, 40, 8, (28, 64), 0.35, True),
    "night-720p": CrowdShape("night-720p", (1280, 720), 10.0, 12, 4, (28, 64), 0.35, True),
}


@dataclass
class CrowdClip:
    """A composed crowd clip on disk: frames folder, ground truth and enrolment photos."""

    folder: Path
    frames: Path
    truth: dict
    enrol: dict[str, str]  # subject ref -> enrolment photo path

    @property
    def truth_sha256(self) -> str:
        """Hash of the ground truth (determinism checks)."""
        return hashlib.sha256(json.dumps(self.truth, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Walker:
    """One person's pass: who, listed or not, and their crossing."""

    identity: str
    listed: bool
    face_px: float
    entry: int  # frame when the head starts entering
    left_to_right: bool
    lane_y: float


def _people(lfw: Path, rng: np.random.Generator) -> tuple[list[Path], list[Path]]:
    """(people with two photos or more, people with one), each in a seed-fixed order."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    order = rng.permutation(len(people))
    shuffled = [people[i] for i in order]
    counts = {p: len(list(p.glob("*.jpg"))) for p in shuffled}
    return [p for p in shuffled if counts[p] >= 2], [p for p in shuffled if counts[p] >= 1]


def _sprite(engine, path: Path, identity: str) -> Sprite | None:
    """The labelled person of an lfw-dev photo cut out (scenes.labelled_sprite). Version 1 took
    the most confident face, in a photo with several faces sometimes a bystander, so a "listed"
    walker could be someone else (seed 14: 2 of 8)."""
    return labelled_sprite(engine, cv2.imread(str(path)), identity)


def _enrollable(engine, path: Path) -> bool:
    from appliance.vision.engine import EnrolmentReject  # noqa: PLC0415

    try:
        engine.enrol_image(cv2.imread(str(path)))
    except EnrolmentReject:
        return False
    return True


def listed_photos(person: Path) -> tuple[Path, Path]:
    """A listed person's (walking photo, enrolment photo): their second and first lfw-dev photo."""
    photos = sorted(person.glob("*.jpg"))
    return photos[1], photos[0]


def cast(engine, lfw: Path, shape: CrowdShape,
         rng: np.random.Generator) -> tuple[list[tuple[Sprite, Path]], list[Sprite]]:
    """Listed people (walking sprite from their second photo, enrolment photo the first) and
    distractors (first photo), all different people, in a seed-fixed order."""
    multi, anyone = _people(lfw, rng)
    listed: list[tuple[Sprite, Path]] = []
    for person in multi:
        walking, enrolment = listed_photos(person)
        sprite = _sprite(engine, walking, person.name)
        if sprite is not None and _enrollable(engine, enrolment):
            listed.append((sprite, enrolment))
        if len(listed) == shape.listed:
            break
    taken = {s.identity for s, _ in listed}
    others: list[Sprite] = []
    for person in anyone:
        if person.name in taken:
            continue
        sprite = _sprite(engine, sorted(person.glob("*.jpg"))[0], person.name)
        if sprite is not None:
            others.append(sprite)
        if len(others) == shape.walkers - shape.listed:
            break
    return listed, others


def _crossing_frames(shape: CrowdShape, face_px: float) -> float:
    """Frames a head of ``face_px`` takes to cross the frame, from first to last pixel in it."""
    head = 2.4 * face_px  # the pasted head: face plus scenes.MARGIN either side
    return (shape.size[0] + head) / (WALK_SPEED * face_px) * FPS


def plan_walkers(shape: CrowdShape, names: list[tuple[str, bool]], rng: np.random.Generator) -> list[Walker]:
    """Seed-fixed passes: sizes uniform in the face range, lanes by size (perspective), listed
    people entering early enough to be wholly visible for at least a third of the clip."""
    w, h = shape.size
    lo, hi = shape.face_px
    walkers = []
    for identity, listed in names:
        face = float(rng.uniform(lo, hi))
        crossing = _crossing_frames(shape, face)
        if listed:
            entry = int(rng.uniform(0, max(1.0, shape.frames * 0.6 - 0.3 * crossing)))
        else:
            entry = int(rng.uniform(-0.6 * crossing, shape.frames - 0.4 * crossing))
        depth = (face - lo) / max(hi - lo, 1e-6)
        lane = h * (0.22 + 0.6 * depth) + rng.uniform(-0.06, 0.06) * h
        walkers.append(Walker(identity, listed, round(face, 1), entry, bool(rng.integers(2)), round(lane, 1)))
    return walkers


def actor_of(walker: Walker, sprite: Sprite, shape: CrowdShape) -> Actor:
    """The scenes.Actor for a walker: the head enters at one side and leaves at the other."""
    head = 2.4 * walker.face_px
    crossing = _crossing_frames(shape, walker.face_px)
    xs = (-head / 2, shape.size[0] + head / 2)
    start, end = (xs if walker.left_to_right else xs[::-1])
    return Actor(sprite, walker.entry, walker.entry + int(np.ceil(crossing)),
                 (start, walker.lane_y), (end, walker.lane_y), walker.face_px)


def _covered(box: np.ndarray, heads: list[np.ndarray]) -> float:
    """Fraction of ``box`` covered by the union of ``heads`` (a coarse pixel grid)."""
    x1, y1, x2, y2 = box
    xs, ys = np.linspace(x1, x2, 12), np.linspace(y1, y2, 12)
    gx, gy = np.meshgrid(xs, ys)
    hit = np.zeros_like(gx, bool)
    for hx1, hy1, hx2, hy2 in heads:
        # the head's feathered ellipse (scenes._feather_mask): centre and semi-axes
        cx, cy, ax, ay = (hx1 + hx2) / 2, (hy1 + hy2) / 2, 0.46 * (hx2 - hx1), 0.48 * (hy2 - hy1)
        hit |= ((gx - cx) / ax) ** 2 + ((gy - cy) / ay) ** 2 <= 1.0
    return float(hit.mean())


def _head_box(face: np.ndarray) -> np.ndarray:
    side = max(face[2] - face[0], face[3] - face[1])
    m = 0.7 * side
    return np.array([face[0] - m, face[1] - m, face[2] + m, face[3] + m])


def render_frame(bg: np.ndarray, actors: list[Actor], seq: int) -> tuple[np.ndarray, list[dict]]:
    """Frame ``seq`` and per pasted actor: index, face box, wholly in frame, covered fraction."""
    frame = bg.copy()
    pasted: list[tuple[int, np.ndarray]] = []
    for index, actor in enumerate(actors):
        pos = actor.at(seq)
        if pos is not None:
            pasted.append((index, paste(frame, actor.sprite, *pos)))
    fh, fw = frame.shape[:2]
    rows = []
    for k, (index, box) in enumerate(pasted):
        inside = bool(box[0] >= 0 and box[1] >= 0 and box[2] <= fw and box[3] <= fh)
        if box[2] <= 0 or box[0] >= fw:
            continue
        covered = _covered(box, [_head_box(b) for _, b in pasted[k + 1:]])
        rows.append({"walker": index, "box": [round(float(v), 1) for v in box],
                     "in_frame": inside, "covered": round(covered, 3)})
    return frame, rows


def darken(frame: np.ndarray, shape: CrowdShape, rng: np.random.Generator) -> np.ndarray:
    """Night: brightness scaled, then shot noise (variance ~ signal) and read noise added."""
    if not shape.night:
        return frame
    signal = frame.astype(np.float32) * shape.brightness
    if shape.noise:
        sigma = np.sqrt(NIGHT_READ_NOISE ** 2 + NIGHT_SHOT_GAIN * signal)
        signal += rng.standard_normal(signal.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(signal), 0, 255).astype(np.uint8)


def _cache_key(lfw: Path, shape: CrowdShape, seed: int) -> str:
    names = ",".join(sorted(p.name for p in lfw.iterdir() if p.is_dir()))
    text = json.dumps([VERSION, asdict(shape), seed, hashlib.sha256(names.encode()).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def compose_crowd(lfw_dir: Path, out_dir: Path, shape: str | CrowdShape, seed: int = 0, *,
                  engine=None, progress: Callable[[int, int], None] | None = None) -> CrowdClip:
    """Compose (or reuse from ``out_dir``) the crowd clip ``shape`` with ``seed``: frames, ground
    truth JSON and enrolment photos. ``engine`` finds the faces in the photos (default: the
    unit's CPU engine); ``progress(done, total)`` is called per frame written."""
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    lfw_dir, out_dir = Path(lfw_dir), Path(out_dir)
    folder = out_dir / f"{shape.name}-seed{seed}-{_cache_key(lfw_dir, shape, seed)}"
    if (folder / "truth.json").is_file():
        return load_clip(folder)
    if engine is None:
        from appliance.config import Config  # noqa: PLC0415
        from appliance.vision.engine import FaceEngine  # noqa: PLC0415

        engine = FaceEngine.from_config(Config())
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    truth, enrol = _compose(engine, lfw_dir, partial, shape, seed, progress)
    (partial / "truth.json").write_text(json.dumps(truth, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return load_clip(folder)


def _compose(engine, lfw: Path, folder: Path, shape: CrowdShape, seed: int,
             progress: Callable[[int, int], None] | None) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    listed, others = cast(engine, lfw, shape, rng)
    sprites = [s for s, _ in listed] + others
    names = [(s.identity, i < len(listed)) for i, s in enumerate(sprites)]
    walkers = plan_walkers(shape, names, rng)
    order = sorted(range(len(walkers)), key=lambda i: walkers[i].face_px)  # far first, near on top
    walkers = [walkers[i] for i in order]
    actors = [actor_of(w, sprites[i], shape) for w, i in zip(walkers, order)]
    enrol = _write_enrolment(folder / "enrol", listed)
    frames = _write_frames(folder / "frames", shape, actors, seed, progress)
    truth = {"version": VERSION, "shape": asdict(shape), "seed": seed, "fps": FPS,
             "occluded_above": OCCLUDED, "enrol": {ref: Path(p).name for ref, p in enrol.items()},
             "walkers": [{**asdict(w), "subject_ref": _ref(w.identity) if w.listed else None}
                         for w in walkers],
             "frames": frames}
    return truth, enrol


def _ref(identity: str) -> str:
    return f"LISTED-{identity}"


def _write_enrolment(folder: Path, listed: list[tuple[Sprite, Path]]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for sprite, photo in listed:
        target = folder / f"{sprite.identity}.jpg"
        shutil.copyfile(photo, target)
        out[_ref(sprite.identity)] = str(target)
    return out


def _write_frames(folder: Path, shape: CrowdShape, actors: list[Actor], seed: int,
                  progress: Callable[[int, int], None] | None) -> list[list[dict]]:
    folder.mkdir(parents=True, exist_ok=True)
    bg = background(shape.size, seed=seed)
    noise = np.random.default_rng([seed, 1])
    truths = []
    for seq in range(shape.frames):
        frame, rows = render_frame(bg, actors, seq)
        cv2.imwrite(str(folder / f"{seq:06d}.jpg"), darken(frame, shape, noise), [cv2.IMWRITE_JPEG_QUALITY, 92])
        truths.append(rows)
        if progress is not None:
            progress(seq + 1, shape.frames)
    return truths


def load_clip(folder: Path) -> CrowdClip:
    """A composed clip from its folder."""
    truth = json.loads((folder / "truth.json").read_text())
    enrol = {ref: str(folder / "enrol" / name) for ref, name in truth["enrol"].items()}
    return CrowdClip(folder, folder / "frames", truth, enrol)


def visible(row: dict, occluded_above: float = OCCLUDED) -> bool:
    """A ground-truth face counts as visible: wholly in frame and not hidden by nearer heads."""
    return row["in_frame"] and row["covered"] <= occluded_above


def full_appearance(truth: dict) -> dict[int, int]:
    """Walker index -> first frame its face is wholly in frame (walkers never wholly in: absent)."""
    first: dict[int, int] = {}
    for seq, rows in enumerate(truth["frames"]):
        for row in rows:
            if row["in_frame"]:
                first.setdefault(row["walker"], seq)
    return first
