"""Evidence rules compared (issue 12, item 4): N of the last M good frames against the track template.

Each crowd shape of lfr_tools.crowd (seed-fixed) is replayed unpaced, so every frame is analysed
and both rules see the same faces (the comparison is of the rule, not of a busy CPU), once with
``[match] evidence = "frames"`` and once with ``"template"``; the watchlist is the clip's own,
and the same padded with DISTRACTORS lfw-dev people who are not in the clip (the card's
threshold for the bigger list, and more subjects a passer-by could be mistaken for). Scored as
the crowd bench scores: listed people alerted, false alerts, duplicate alerts. The rule to keep
is the one alerting more listed people at no more false alerts; ties keep "frames" (it holds
no embedding beyond the frame).
"""
from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

from lfr_tools.bench.crowd import SEED, DetectionProbe
from lfr_tools.bench.crowd_metrics import AlertSeen, score_alerts
from lfr_tools.crowd import SHAPES, CrowdClip, compose_crowd
from lfr_tools.paths import LFW_DEV

RULES = ("frames", "template")
DISTRACTORS = 300
BUDGETS = (2, 0)  # [match] embed_budget: the default, and every good face every frame


def distractors(engine, clip: CrowdClip, n: int = DISTRACTORS) -> dict[str, str]:
    """``n`` enrollable lfw-dev people who do not walk in ``clip``: subject ref -> photo."""
    from appliance.vision.engine import EnrolmentReject, decode_image  # noqa: PLC0415

    walking = {w["identity"] for w in clip.truth["walkers"]}
    people = sorted((p for p in LFW_DEV.iterdir() if p.is_dir() and p.name not in walking),
                    key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    chosen: dict[str, str] = {}
    for person in people:
        photo = sorted(person.glob("*.jpg"))[0]
        try:
            engine.enrol_image(decode_image(photo))
        except EnrolmentReject:
            continue
        chosen[f"DISTRACTOR-{person.name}"] = str(photo)
        if len(chosen) == n:
            break
    return chosen


def run_rule(engine, clip: CrowdClip, workdir: Path, evidence: str, watchlist, budget: int) -> dict:
    """Replay ``clip`` unpaced with one evidence rule and embed budget; the crowd bench's alert
    scores, and the repeat sightings scored alike (one on another walker is a false sighting)."""
    from lfr_tools.replay import replay  # noqa: PLC0415

    data = workdir / "unit-data"
    shutil.rmtree(data, ignore_errors=True)
    cfg = {"unit": {"data_dir": str(data)}, "capture": {"source": str(clip.frames), "fps": 0.0},
           "match": {"evidence": evidence, "embed_budget": budget}}
    probe = DetectionProbe(engine)
    try:
        result = replay(cfg, engine=engine, watchlist=watchlist, config_path=workdir / "evidence.toml")
    finally:
        probe.close()
    if result.error is not None:
        raise result.error
    scored = score_alerts(clip.truth, [AlertSeen(a.subject_ref, a.frame_seq, probe.box_of(a))
                                       for a in result.alerts])
    scored.pop("first_alerts")
    repeats = score_alerts(clip.truth, [AlertSeen(a.subject_ref, a.frame_seq, probe.box_of(a))
                                        for a in result.repeat_sightings])
    return {**scored, "repeat_sightings": len(result.repeat_sightings),
            "repeat_sightings_false": repeats["false_alerts"],
            "template_decisions": result.counters["template_decisions"],
            "embeddings": result.counters["matches"] + result.counters["non_matches_discarded"],
            "threshold": round(float(watchlist.threshold or 0.0), 4), "watchlist_size": len(watchlist)}


def better(rows: dict[str, dict]) -> str:
    """The rule with more listed alerted at no more false alerts than the other ("frames" on a
    tie). The template wins only through its own decisions: the two runs can differ by one
    alert without any (finish and analyse overlap, so which faces are embedded can vary)."""
    f, t = rows["frames"], rows["template"]
    wins = (t["false_alerts"] <= f["false_alerts"] and t["listed_alerted"] > f["listed_alerted"]
            and t["template_decisions"] > 0)
    return "template" if wins else "frames"


def run_shapes(out_dir: Path, shapes: list[str] | None = None, seed: int = SEED) -> dict:
    """Every shape x watchlist (own, padded) x embed budget x rule."""
    from appliance.config import Config  # noqa: PLC0415
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415
    from lfr_tools.replay import enrol_plain  # noqa: PLC0415

    workdir = Path(out_dir) / "work" / "crowd"
    rows: dict[str, dict] = {}
    engine = FaceEngine.from_config(Config())
    with engine:
        for name in shapes or list(SHAPES):
            clip = compose_crowd(LFW_DEV, workdir, name, seed, engine=engine)
            lists = {"own": clip.enrol, f"own+{DISTRACTORS}": {**clip.enrol, **distractors(engine, clip)}}
            for (label, images), budget in itertools.product(lists.items(), BUDGETS):
                watchlist = enrol_plain(engine, images)
                per_rule = {rule: run_rule(engine, clip, workdir, rule, watchlist, budget) for rule in RULES}
                rows[f"{name} / {label} / embed_budget {budget}"] = {**per_rule, "better": better(per_rule)}
    return rows


def run(out_dir: Path) -> dict:
    """Benchmark entry point: both rules' figures per shape and watchlist, and the verdict."""
    result = {"bench": "evidence rules on crowd clips from lfw-dev, unpaced replay, default config otherwise",
              "seed": SEED, "rules": list(RULES)}
    if not LFW_DEV.is_dir():
        result["skipped"] = f"{LFW_DEV} absent: crowd clips are composed from labelled face photos"
        return result
    result["cases"] = run_shapes(Path(out_dir))
    result["template_better_in"] = sorted(k for k, v in result["cases"].items() if v["better"] == "template")
    return result
