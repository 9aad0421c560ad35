"""Crowd clips (issue 12): the composer is seed-fixed and has the promised shape; the crowd
bench's scoring counts duplicates, false alerts and coverage right on small synthetic inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lfr_tools.bench.crowd import TARGETS, met
from lfr_tools.bench.crowd_metrics import AlertSeen, coverage, delays, score_alerts
from lfr_tools.crowd import SHAPES, compose_crowd, darken, full_appearance, visible


@pytest.fixture(scope="module")
def day_clip(lfw, engine, tmp_path_factory):
    """The 1080p day crowd clip, composed once for the module."""
    return compose_crowd(lfw, tmp_path_factory.mktemp("crowd"), "day-1080p", seed=12, engine=engine)


def test_same_seed_gives_the_same_clip_and_another_seed_another(lfw, engine, tmp_path):
    first = compose_crowd(lfw, tmp_path / "a", "night-720p", seed=5, engine=engine)
    again = compose_crowd(lfw, tmp_path / "b", "night-720p", seed=5, engine=engine)
    other = compose_crowd(lfw, tmp_path / "c", "night-720p", seed=6, engine=engine)
    assert first.truth_sha256 == again.truth_sha256
    assert first.truth_sha256 != other.truth_sha256
    frame = sorted(first.frames.glob("*.jpg"))[40]
    assert frame.read_bytes() == (again.frames / frame.name).read_bytes()  # the noise is seed-fixed too


def test_a_composed_clip_is_reused_from_the_work_dir(lfw, engine, tmp_path):
    clip = compose_crowd(lfw, tmp_path, "night-720p", seed=5, engine=engine)
    marker = clip.frames / "000000.jpg"
    marker.write_bytes(b"cached")
    assert compose_crowd(lfw, tmp_path, "night-720p", seed=5).frames.joinpath("000000.jpg").read_bytes() == b"cached"


def test_day_clip_has_40_walkers_8_listed_and_faces_28_to_64_px(day_clip):
    truth = day_clip.truth
    walkers = truth["walkers"]
    assert len(walkers) == 40 and len({w["identity"] for w in walkers}) == 40
    listed = [w for w in walkers if w["listed"]]
    assert len(listed) == 8
    assert set(day_clip.enrol) == {w["subject_ref"] for w in listed}
    assert all(p.endswith(".jpg") for p in day_clip.enrol.values())
    heights = [r["box"][3] - r["box"][1] for rows in truth["frames"] for r in rows]
    assert 28 - 0.5 <= min(heights) and max(heights) <= 64 + 0.5
    assert len(truth["frames"]) == 150 and len(list(day_clip.frames.glob("*.jpg"))) == 150


def test_about_25_faces_are_visible_and_every_listed_walker_appears_in_full(day_clip):
    truth = day_clip.truth
    shown = [sum(visible(r) for r in rows) for rows in truth["frames"]]
    assert 20 <= np.mean(shown) <= 30
    appear = full_appearance(truth)
    for index, walker in enumerate(truth["walkers"]):
        if walker["listed"]:
            in_frame = sum(r["in_frame"] for rows in truth["frames"] for r in rows if r["walker"] == index)
            assert index in appear and in_frame >= 40, walker["identity"]


def test_night_darkening_scales_brightness_and_adds_seed_fixed_noise():
    day = np.full((90, 160, 3), 120, np.uint8)
    night = darken(day, SHAPES["night-1080p"], np.random.default_rng(1))
    assert abs(night.mean() - 0.35 * 120) < 1.5
    assert 3.0 < night.astype(np.float32).std() < 10.0  # the sensor noise
    assert np.array_equal(night, darken(day, SHAPES["night-1080p"], np.random.default_rng(1)))
    assert darken(day, SHAPES["day-1080p"], np.random.default_rng(1)) is day


def _truth(frames: list[list[dict]], listed=(True, False)) -> dict:
    """A tiny ground truth: walker 0 listed as LISTED-a, walker 1 a distractor."""
    walkers = [{"identity": name, "listed": is_listed, "subject_ref": f"LISTED-{name}" if is_listed else None}
               for name, is_listed in zip("ab", listed)]
    return {"fps": 10.0, "occluded_above": 0.25, "walkers": walkers, "frames": frames}


def _row(walker: int, x: float, in_frame: bool = True, covered: float = 0.0) -> dict:
    return {"walker": walker, "box": [x, 100.0, x + 40.0, 140.0], "in_frame": in_frame, "covered": covered}


def test_a_second_alert_for_one_walker_pass_is_a_duplicate():
    truth = _truth([[_row(0, 10), _row(1, 300)]] * 3)
    alerts = [AlertSeen("LISTED-a", 0, (11, 101, 51, 141)), AlertSeen("LISTED-a", 2, (10, 100, 50, 140))]
    scored = score_alerts(truth, alerts)
    assert (scored["listed_alerted"], scored["duplicate_alerts"], scored["false_alerts"]) == (1, 1, 0)


def test_an_alert_on_a_distractor_or_for_the_wrong_subject_is_false():
    truth = _truth([[_row(0, 10), _row(1, 300)]], listed=(True, True))
    truth["walkers"][1]["subject_ref"] = "LISTED-b"
    on_other = AlertSeen("LISTED-a", 0, (300, 100, 340, 140))  # b's face, a's subject
    on_nobody = AlertSeen("LISTED-a", 0, (900, 500, 940, 540))
    unplaced = AlertSeen("LISTED-a", 0, None)
    scored = score_alerts(truth, [on_other, on_nobody, unplaced])
    assert scored["false_alerts"] == 3 and scored["listed_alerted"] == 0
    assert scored["missed"] == ["a", "b"]
    distractor = score_alerts(_truth([[_row(0, 10), _row(1, 300)]]), [AlertSeen("LISTED-a", 0, (300, 100, 340, 140))])
    assert distractor["false_alerts"] == 1 and distractor["false_detail"][0]["walker_listed"] is False


def test_coverage_averages_visible_faces_found_per_processed_frame():
    frames = [[_row(0, 10), _row(1, 300)],                      # 1 of 2 found
              [_row(0, 20), _row(1, 310, covered=0.6)],         # b hidden: 1 of 1
              [_row(0, 30), _row(1, 320, in_frame=False)],      # frame dropped
              []]                                               # nobody shown
    detections = {0: [[12, 101, 52, 141]], 1: [[20, 100, 60, 140]], 3: []}
    cov = coverage(_truth(frames), detections)
    assert cov["coverage"] == pytest.approx(0.75)
    assert cov["coverage_all_frames"] == pytest.approx(0.5)  # the dropped frame found none of its one face
    assert cov["per_frame"] == [0.5, 1.0, None, None]


def test_delays_run_from_full_appearance_to_first_detection_and_alert():
    frames = [[_row(0, -20, in_frame=False)], [_row(0, 0)], [_row(0, 10)], [_row(0, 20)], [_row(0, 30)]]
    truth = _truth(frames)
    detections = {1: [], 2: [], 3: [[20, 100, 60, 140]], 4: [[30, 100, 70, 140]]}
    out = delays(truth, detections, {0: AlertSeen("LISTED-a", 4, (30, 100, 70, 140), latency_s=0.05)})
    assert out["first_detection_s"] == {"p50": 0.2, "p90": 0.2, "n": 1}
    assert out["alert_s"]["p50"] == pytest.approx(0.35)
    assert out["never_detected"] == 0


def test_targets_are_judged_per_shape():
    row = {"listed_alerted_fraction": 0.875, "false_alerts": 0, "duplicate_alerts": 1, "coverage": 0.9,
           "first_detection_s": {"p90": 0.4}}
    assert met(row, night=True) == {"listed_alerted": True, "false_alerts": True, "duplicate_alerts": False,
                                    "coverage": True, "first_detection_p90": True}
    assert met(row, night=False)["listed_alerted"] is False
    assert json.loads(json.dumps(TARGETS))["coverage"] == 0.85


class _Face:
    def __init__(self, box, height, score):
        from appliance.vision.detect import Detection

        self.det = Detection(np.array(box, np.float32), score, np.zeros((6, 2), np.float32))
        self.quality, self.reject = {"height_px": height, "det_score": score}, None


class _Engine:
    def analyse(self, frame, seq=None, *args, **kwargs):
        return [_Face([0, 0, 40, 40], 40.0, 0.9), _Face([100, 0, 130, 30], 30.0, 0.8)]


def test_the_probe_ties_an_alert_to_the_face_it_was_raised_on_and_gives_analyse_back():
    from types import SimpleNamespace

    from lfr_tools.bench.crowd import DetectionProbe

    engine = _Engine()
    probe = DetectionProbe(engine)
    faces = engine.analyse(None, 7)
    assert probe.boxes[7] == [[0, 0, 40, 40], [100, 0, 130, 30]]
    assert probe.box_of(SimpleNamespace(quality=faces[1].quality, frame_seq=7)) == [100, 0, 130, 30]
    copied = SimpleNamespace(quality=dict(faces[0].quality), frame_seq=7)
    assert probe.box_of(copied) == [0, 0, 40, 40]
    assert probe.box_of(SimpleNamespace(quality={"height_px": 1.0, "det_score": 0.1}, frame_seq=7)) is None
    probe.close()
    assert "analyse" not in vars(engine)


def test_without_lfw_dev_every_shape_is_skipped_with_the_reason(tmp_path, monkeypatch):
    from lfr_tools.bench import crowd

    monkeypatch.setattr(crowd, "LFW_DEV", tmp_path / "absent")
    result = crowd.run(tmp_path)
    assert set(result["shapes"]) == set(SHAPES)
    assert all("absent" in row["skipped"] for row in result["shapes"].values())
    assert not (tmp_path / "crowd.png").exists()


def test_a_repeat_sighting_is_scored_false_on_the_wrong_walker_and_never_a_duplicate():
    truth = _truth([[_row(0, 10), _row(1, 300)]] * 3, listed=(True, True))
    truth["walkers"][1]["subject_ref"] = "LISTED-b"
    alerts = [AlertSeen("LISTED-a", 0, (10, 100, 50, 140)),
              AlertSeen("LISTED-a", 2, (10, 100, 50, 140), kind="repeat_sighting"),  # a's fragmented track
              AlertSeen("LISTED-a", 2, (300, 100, 340, 140), kind="repeat_sighting")]  # on b: false
    scored = score_alerts(truth, alerts)
    assert (scored["listed_alerted"], scored["duplicate_alerts"], scored["repeat_sightings"]) == (1, 0, 1)
    assert scored["false_alerts"] == 1 and scored["false_detail"][0]["kind"] == "repeat_sighting"
    assert scored["missed"] == ["b"]
