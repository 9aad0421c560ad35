"""Privacy by construction (G1): a face that does not match is never written, logged or published.

People not on the watchlist are replayed through `appliance -v run` (debug
logging on) while a watchlist of someone else is loaded, so every face is
detected, embedded, matched and discarded. Then the data dir, the temp dir,
stdout and stderr are searched for any crop or embedding of those faces,
computed independently with the same engine.
"""
from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr_tools.scenes import Actor, background, write_clip
from appliance.vision.engine import thumbnail
from conftest import provision, run_cli
from deployment_helpers import start_deployment, trusting
from scene_helpers import lfw_people, sprite_from


def _needles(engine, clip: Path) -> list[bytes]:
    """Byte strings that would betray a non-matching face: vectors, crops, JPEGs, text."""
    needles: list[bytes] = []
    for path in sorted(clip.glob("*.jpg")):
        frame = cv2.imread(str(path))
        for face in engine.faces(frame):
            if face.embedding is not None:
                vec = face.embedding
                needles += [vec.tobytes()[:32], vec.astype(np.float64).tobytes()[:64],
                            base64.b64encode(vec.tobytes()[:48]),
                            " ".join(f"{v:.4f}" for v in vec[:3]).encode(),
                            ", ".join(f"{v:.4f}" for v in vec[:3]).encode()]
                needles.append(face.aligned[40:44].tobytes())
            jpeg = thumbnail(frame, face.det, 112)
            needles += [jpeg[200:264], base64.b64encode(jpeg[300:348])]
    return needles


def _haystacks(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def test_non_matching_faces_leave_no_trace(engine, lfw, tmp_path):
    people = lfw_people(lfw, min_images=2)
    passers = [s for s in (sprite_from(engine, sorted(p.glob("*.jpg"))[0], p.name) for p in people[10:16]) if s][:4]
    enrolled = sorted(people[30].glob("*.jpg"))[0]
    clip, data, tmp = tmp_path / "clip", tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    provision(data)
    actors = [Actor(s, 0, 19, (150.0 + 250 * i, 250.0 + 60 * i), (300.0 + 250 * i, 300.0 + 60 * i), 90)
              for i, s in enumerate(passers)]
    write_clip(clip, background((1280, 720), seed=3), actors, 20)
    config = tmp_path / "privacy.toml"
    config.write_text(trusting(f'[unit]\ndata_dir = "{data}"\n[capture]\nsource = "{clip}"\nfps = 0.0\n'
                               f'[runner]\nlog_level = "debug"\n', tmp_path / "back-office"))
    start_deployment(config, {"SOMEONE-ELSE": enrolled}, engine)
    result = run_cli("-v", "run", "--config", str(config), env={"TMPDIR": str(tmp)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "non_matches_discarded" in result.stderr and "DEBUG" in result.stderr
    assert result.stdout.strip() == "", "an alert was raised for people not on the watchlist"
    needles = _needles(engine, clip)
    assert len(needles) > 40, "too few faces found: the test would prove nothing"
    haystacks = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode(),
                 **_haystacks(data, tmp)}
    leaks = [(name, i) for name, hay in haystacks.items() for i, n in enumerate(needles) if n in hay]
    assert leaks == []


def test_the_needle_search_would_catch_a_leak(engine, lfw, tmp_path):
    """Guard against a vacuous check: a deliberately written embedding is found."""
    person = lfw_people(lfw, min_images=1)[0]
    clip = tmp_path / "clip"
    clip.mkdir()
    cv2.imwrite(str(clip / "000000.jpg"), cv2.imread(str(sorted(person.glob("*.jpg"))[0])))
    face = engine.faces(cv2.imread(str(clip / "000000.jpg")))[0]
    (tmp_path / "leak.log").write_text("debug: " + " ".join(f"{v:.4f}" for v in face.embedding[:8]))
    needles = _needles(engine, clip)
    hay = (tmp_path / "leak.log").read_bytes()
    if not any(n in hay for n in needles):
        pytest.fail("the leak detector missed an embedding printed as text")


def test_track_templates_live_in_memory_only_while_their_track_lives(engine, lfw, tmp_path):
    """[match] evidence = "template" keeps a quality-weighted mean of a track's embeddings (also of
    faces that do not match) on the track, in memory only: wiped in place and dropped when the
    track ends, and never kept on a lost track waiting to be re-joined."""
    from appliance.capture.replay import ReplaySource
    from appliance.config import parse_config
    from appliance.pipeline.frame import FrameProcessor
    from scene_helpers import cast_watchlist, two_photo_cast

    cast = two_photo_cast(engine, lfw, 4)
    clip = tmp_path / "clip"
    actors = [Actor(cast[i][2], 0, 11, (200.0 + 300 * i, 300.0), (300.0 + 300 * i, 320.0), 90) for i in (1, 2, 3)]
    write_clip(clip, background((1280, 720), seed=5), actors, 24)  # frames 12-23: nobody
    cfg = parse_config({"match": {"evidence": "template"}, "track": {"max_missed_frames": 5, "rejoin_s": 60.0}},
                       tmp_path / "t.toml")
    watchlist = cast_watchlist(engine, cast, (0,))  # someone else: every face here is a non-match
    processor = FrameProcessor(cfg, engine, lambda: watchlist)
    held = []
    with ReplaySource(clip, 0.0, False, "cam0") as source:
        for frame in source.frames():
            assert processor.finish(processor.analyse(frame)) == []
            if frame.seq == 11:
                held = [t.template.total for t in processor.tracker.tracks.values() if t.template is not None]
                assert len(held) == 3 and all(h.any() for h in held), "the templates were built"
    ended = [*processor.tracker.tracks.values(), *processor.tracker.lost.values()]
    assert len(processor.tracker.lost) == 3, "the tracks ended and wait, without faces, to be re-joined"
    assert all(t.template is None for t in ended) and not any(h.any() for h in held), "wiped in place"
