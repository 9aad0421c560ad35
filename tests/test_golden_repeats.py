"""Golden replay tests for one alarm per person: repeat suppression and track re-joining.

Clips are composed from lfw-dev people (as in test_golden_replay.py) and carry capture
times (capture_times.txt), so "30 s later" and "three minutes later" are what the unit
sees, however fast the replay runs. Each expectation is checked against a control run
with the feature off, so a test that passes would fail without the feature.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audit.report import entries_from_db
from appliance.audit.sink import audit_db_path
from appliance.config import parse_config
from lfr_tools.replay import replay
from lfr_tools.scenes import Actor, background, write_clip
from scene_helpers import cast_watchlist, two_photo_cast

FPS = 15.0


@pytest.fixture(scope="module")
def cast(engine, lfw):
    """Four people with two usable photos each: (enrolment photo, sprite from another photo)."""
    return two_photo_cast(engine, lfw, 4)


def _run(tmp_path: Path, engine, cast, actors: list[Actor], frames: int, times: list[float],
         enrolled=(0,), match: dict | None = None, track: dict | None = None):
    clip = tmp_path / "clip"
    write_clip(clip, background((1280, 720), seed=11), actors, frames)
    (clip / "capture_times.txt").write_text("".join(f"{t:.4f}\n" for t in times))
    cfg = parse_config({"unit": {"data_dir": str(tmp_path / "data")},
                        "capture": {"backend": "replay", "source": str(clip), "fps": 0.0},
                        "match": match or {}, "track": track or {}}, tmp_path / "golden.toml")
    result = replay(cfg, engine=engine, watchlist=cast_watchlist(engine, cast, enrolled))
    assert result.error is None
    assert result.counters["frames"] == frames
    return result, cfg


def _two_passes(cast, gap_s: float) -> tuple[list[Actor], int, list[float]]:
    """Person 0 crosses left to right, and again right to left ``gap_s`` seconds later;
    person 3 (not listed) crosses during each pass."""
    actors = [Actor(cast[0][2], 0, 15, (100.0, 300.0), (500.0, 320.0), 80),
              Actor(cast[3][2], 0, 15, (1100.0, 150.0), (800.0, 170.0), 70),
              Actor(cast[0][2], 16, 31, (1180.0, 420.0), (780.0, 440.0), 80),
              Actor(cast[3][2], 16, 31, (200.0, 150.0), (500.0, 170.0), 70)]
    times = [s / FPS for s in range(16)] + [gap_s + s / FPS for s in range(16)]
    return actors, 32, times


def test_same_person_twice_within_the_window_gives_one_alert_and_one_repeat_sighting(cast, engine, tmp_path):
    result, cfg = _run(tmp_path, engine, cast, *_two_passes(cast, 30.0))
    assert [a.subject_ref for a in result.alerts] == [cast[0][0]]
    assert [r.subject_ref for r in result.repeat_sightings] == [cast[0][0]]
    alert, repeat = result.alerts[0], result.repeat_sightings[0]
    assert (alert.kind, repeat.kind) == ("alert", "repeat_sighting")
    assert repeat.original_alert_id == alert.alert_id and repeat.track_id != alert.track_id
    assert repeat.face_jpeg[:3] == b"\xff\xd8\xff", "the repeat sighting carries its new crop"
    entries, _ = entries_from_db(audit_db_path(cfg))
    audited = [(e["type"], e["payload"]["alert_id"]) for e in entries if e["type"] in ("alert", "repeat_sighting")]
    assert audited == [("alert", alert.alert_id), ("repeat_sighting", repeat.alert_id)]
    sighting = next(e["payload"] for e in entries if e["type"] == "repeat_sighting")
    assert sighting["original_alert_id"] == alert.alert_id and sighting["subject_ref"] == cast[0][0]


def test_the_same_clip_without_a_repeat_window_gives_two_alerts(cast, engine, tmp_path):
    """Control: the two passes above are two tracks; only the window made the second a sighting."""
    result, _ = _run(tmp_path, engine, cast, *_two_passes(cast, 30.0), match={"repeat_window_s": 0})
    assert [a.subject_ref for a in result.alerts] == [cast[0][0]] * 2
    assert result.repeat_sightings == []


def test_a_person_who_really_passes_twice_minutes_apart_gives_two_alerts(cast, engine, tmp_path):
    result, _ = _run(tmp_path, engine, cast, *_two_passes(cast, 180.0))
    assert [a.subject_ref for a in result.alerts] == [cast[0][0]] * 2
    assert result.repeat_sightings == []
    assert len({a.track_id for a in result.alerts}) == 2


def _lost_mid_walk(cast, later: int = 0) -> tuple[list[Actor], int, list[float]]:
    """Person 0 walks left to right at 15 fps; the face is lost for 20 frames (1.3 s, longer
    than [track] max_missed_frames) mid-walk; person ``later`` is who is seen after the gap,
    on the same path. Person 3 (not listed) walks along the top throughout."""
    speed = 22.0  # px a frame
    path = [(100.0 + speed * s, 360.0 + s) for s in range(48)]
    actors = [Actor(cast[0][2], 0, 13, path[0], path[13], 80),
              Actor(cast[later][2], 34, 47, path[34], path[47], 80),
              Actor(cast[3][2], 0, 47, (1150.0, 120.0), (250.0, 130.0), 70)]
    return actors, 48, [s / FPS for s in range(48)]


@pytest.mark.parametrize(("rejoin_s", "repeat_window_s", "alerts", "repeats"), [
    (3.0, 60.0, 1, 0),  # the default: one track, one alarm
    (3.0, 0.0, 1, 0),   # re-joining alone keeps it to one alarm
    (0.0, 60.0, 1, 1),  # control: without re-joining the track fragments; the window catches it
    (0.0, 0.0, 2, 0),   # control: without either, the fragment rings twice
])
def test_a_face_lost_for_several_frames_mid_walk_gives_one_alert(cast, engine, tmp_path, rejoin_s,
                                                                   repeat_window_s, alerts, repeats):
    result, _ = _run(tmp_path, engine, cast, *_lost_mid_walk(cast),
                     match={"repeat_window_s": repeat_window_s}, track={"rejoin_s": rejoin_s})
    assert [a.subject_ref for a in result.alerts] == [cast[0][0]] * alerts
    assert [r.subject_ref for r in result.repeat_sightings] == [cast[0][0]] * repeats
    assert (result.counters["tracks_rejoined"] > 0) == (rejoin_s > 0)


def test_a_different_listed_person_where_the_lost_one_was_heading_still_alerts(cast, engine, tmp_path):
    """A wrong re-join (motion only) is undone by the first match naming another subject."""
    result, _ = _run(tmp_path, engine, cast, *_lost_mid_walk(cast, later=1), enrolled=(0, 1))
    assert sorted(a.subject_ref for a in result.alerts) == sorted([cast[0][0], cast[1][0]])
    assert result.repeat_sightings == []
    assert result.counters["tracks_rejoined"] > 0 and result.counters["rejoins_undone"] > 0


def test_replay_frames_carry_the_clips_capture_times_and_a_bad_times_file_is_refused(tmp_path):
    import cv2
    import numpy as np

    from appliance.capture.replay import ReplaySource
    from appliance.errors import CaptureError

    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / f"{i:06d}.jpg"), np.full((8, 8, 3), 40 * i, np.uint8))
    (clip / "capture_times.txt").write_text("0\n0.5\n180.25\n")
    with ReplaySource(clip, 0.0, False, "cam0") as source:
        times = [f.t_mono for f in source.frames()]
    assert np.allclose(np.diff(times), [0.5, 179.75])
    (clip / "capture_times.txt").write_text("0\n0.5\n")
    with pytest.raises(CaptureError, match="3 non-decreasing times"):
        ReplaySource(clip, 0.0, False, "cam0")
    (clip / "capture_times.txt").write_text("0\n2\n1\n")
    with pytest.raises(CaptureError, match="non-decreasing"):
        ReplaySource(clip, 0.0, False, "cam0")
