"""Night faces, one frame against the steady mean of five (`appliance bench --only steady`).

[quality] lowlight_steady_frames averages a dark face's last aligned crops before embedding
(appliance/vision/lowlight.py). The threshold comes from the accuracy card, calibrated on
single daylight photos, so the question a reviewer asks first is whether the mean of five
noisy crops lets impostors through more often. Here every lfw-dev person with two photos is
enrolled from their first photo and walks past in their second (everyone with one photo walks
past as a stranger: impostor comparisons only), shrunk to a small face and
degraded as the night crowd clips are (brightness x0.35, shot and read noise), five frames
with fresh noise and a sub-pixel shift each, each frame's face found by the detector on the
lifted frame and aligned on its own keypoints (the jitter a stream has). Each probe is scored
against every enrolment, one frame at a time and as the mean of its five crops: genuine
scores over the threshold, and impostor comparisons over it (the entry false-match rate the
card bounds), at the thresholds the card gives lists of 8, 100 and 1000 entries.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfr_tools.paths import LFW_DEV

SEED = 3
FRAMES = 5
FACE_PX = (32, 48)
LIST_SIZES = (8, 100, 1000)
NIGHT = "night-1080p"  # lfr_tools.crowd's night: its brightness and noise


def night_frames(photo: np.ndarray, face_px: float, face_h: float, rng: np.random.Generator) -> list[np.ndarray]:
    """``FRAMES`` night views of ``photo`` with its face ``face_px`` high, on a dark canvas."""
    from lfr_tools.crowd import SHAPES, darken  # noqa: PLC0415

    scale = face_px / face_h
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    out = []
    for _ in range(FRAMES):
        canvas = np.full((3 * h, 3 * w, 3), 60, np.uint8)
        shift = np.float32([[1, 0, w + rng.uniform(-0.5, 0.5)], [0, 1, h + rng.uniform(-0.5, 0.5)]])
        cv2.warpAffine(small, shift, (3 * w, 3 * h), dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)
        out.append(darken(canvas, SHAPES[NIGHT], rng))
    return out


def probe_crops(engine, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame's most central face, found on the lifted frame and aligned on its own keypoints."""
    from appliance.vision.align import align  # noqa: PLC0415
    from appliance.vision.engine import most_central  # noqa: PLC0415

    crops = []
    for frame in frames:
        det = most_central(engine.detector.detect(engine.lift(frame)), frame)
        if det is not None:
            crops.append(align(frame, det.keypoints))
    return crops


def cast(engine, lfw: Path) -> list[tuple[str, np.ndarray | None, np.ndarray, float]]:
    """(name, enrolment embedding, walking photo, its face height) of every enrollable person with
    two photos, then (name, None, photo, face height) of everyone with one: strangers, impostor
    probes only (more impostor comparisons: the rates at issue are about 1e-5)."""
    from appliance.vision.engine import EnrolmentReject  # noqa: PLC0415
    from lfr_tools.crowd import listed_photos  # noqa: PLC0415

    people, strangers = [], []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2:
            walking, enrolment = listed_photos(person)
            try:
                reference = engine.enrol_image(cv2.imread(str(enrolment))).embedding
            except EnrolmentReject:
                continue
        elif photos:
            walking, reference = photos[0], None
        else:
            continue
        photo = cv2.imread(str(walking))
        face = engine.central_face(photo)
        if face is not None:
            (people if reference is not None else strangers).append(
                (person.name, reference, photo, float(face.det.box[3] - face.det.box[1])))
    return people + strangers


def scores(engine, people, face_px: float, progress=None) -> dict:
    """Genuine and impostor scores of every probe, one frame at a time and as the steady mean."""
    from appliance.vision.lowlight import steady_mean  # noqa: PLC0415

    enrolled = [p for p in people if p[1] is not None]
    refs = np.stack([p[1] for p in enrolled])
    rng = np.random.default_rng(SEED)
    single_g, steady_g, single_i, steady_i = [], [], [], []
    for k, (_, reference, photo, face_h) in enumerate(people):
        crops = probe_crops(engine, night_frames(photo, face_px, face_h, rng))
        if progress:
            progress()
        if len(crops) < 2:
            continue
        vecs = engine.embedder.embed(np.stack([*crops, steady_mean(crops)]))
        s = vecs @ refs.T
        others = np.arange(len(enrolled)) != k  # the enrolled come first, in order
        if reference is not None:
            single_g.extend(s[:-1, k])
            steady_g.append(s[-1, k])
        single_i.append(s[:-1][:, others].ravel())
        steady_i.append(s[-1, others])
    return {"single_genuine": np.array(single_g), "steady_genuine": np.array(steady_g),
            "single_impostor": np.concatenate(single_i), "steady_impostor": np.concatenate(steady_i)}


def summary(s: dict, thresholds: dict[int, float], card_fmr) -> dict:
    """Per list size: genuine over the threshold and impostor comparisons over it (entry FMR),
    one frame and steady, beside the card's entry FMR at that threshold."""
    out = {"genuine_probes": len(s["steady_genuine"]), "genuine_single_frames": len(s["single_genuine"]),
           "impostor_comparisons": {"single": len(s["single_impostor"]), "steady": len(s["steady_impostor"])},
           "genuine_median": {"single": round(float(np.median(s["single_genuine"])), 3),
                              "steady": round(float(np.median(s["steady_genuine"])), 3)},
           "impostor_max": {"single": round(float(s["single_impostor"].max()), 3),
                            "steady": round(float(s["steady_impostor"].max()), 3)}}
    for size, t in thresholds.items():
        out[f"list_{size}"] = {
            "threshold": round(t, 4), "card_entry_fmr": card_fmr(t),
            "genuine_over": {k: round(float((s[f"{k}_genuine"] >= t).mean()), 4) for k in ("single", "steady")},
            "impostor_over": {k: int((s[f"{k}_impostor"] >= t).sum()) for k in ("single", "steady")},
            "entry_fmr": {k: float((s[f"{k}_impostor"] >= t).mean()) for k in ("single", "steady")}}
    return out


def run(out_dir: Path) -> dict:
    """Benchmark entry point: both face sizes, JSON and a PNG of the score distributions."""
    from rich.progress import Progress  # noqa: PLC0415

    from appliance.config import Config  # noqa: PLC0415
    from appliance.thresholds import rule_for, unit_model_id  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415

    result = {"bench": __doc__.splitlines()[0], "frames": FRAMES, "seed": SEED}
    if not LFW_DEV.is_dir():
        result["skipped"] = f"{LFW_DEV} absent: the probes are lfw-dev photos"
        return result
    rule = rule_for(unit_model_id())
    thresholds = {n: rule.threshold_for(n) for n in LIST_SIZES}
    with FaceEngine.from_config(Config()) as engine, Progress() as progress:
        people = cast(engine, LFW_DEV)
        raw = {}
        for px in FACE_PX:
            task = progress.add_task(f"{px} px night faces", total=len(people))  # then strangers
            raw[px] = scores(engine, people, px, lambda task=task: progress.advance(task))
            result[f"face_{px}px"] = summary(raw[px], thresholds, rule.entry_fmr)
    steady_png(Path(out_dir) / "steady.png", raw, thresholds)
    return result


def steady_png(path: Path, raw: dict, thresholds: dict[int, float]) -> None:
    """Genuine and impostor score histograms, one frame against the steady mean, per face size."""
    from lfr_tools.bench.plots import _pyplot  # noqa: PLC0415

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(raw), figsize=(6 * len(raw), 4), dpi=110)
    for ax, (px, s) in zip(np.atleast_1d(axes), raw.items()):
        bins = np.linspace(-0.3, 1.0, 66)
        for key, colour in (("single", "tab:grey"), ("steady", "tab:blue")):
            ax.hist(s[f"{key}_impostor"], bins, density=True, histtype="step", color=colour, linestyle="--",
                    label=f"impostor, {key}")
            ax.hist(s[f"{key}_genuine"], bins, density=True, histtype="step", color=colour, label=f"genuine, {key}")
        for size, t in thresholds.items():
            ax.axvline(t, color="red", linewidth=0.8, alpha=0.6)
            ax.text(t, ax.get_ylim()[1] * 0.9, f" {size}", color="red", fontsize=7)
        ax.set_title(f"night faces {px} px: one frame vs mean of {FRAMES} crops", fontsize=9)
        ax.set_xlabel("cosine score against the enrolment")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
