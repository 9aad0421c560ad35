"""Temporal averaging of a dark face's aligned crops (lowlight.SteadyCrops, [quality]
lowlight_steady_*): what is kept, for how long, that it is wiped, and that it helps at night."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.config import Config, parse_config
from appliance.pipeline.track import Track, Tracker, drop_template
from appliance.vision.lowlight import SteadyCrops, steady_mean


def _crop(level: int) -> np.ndarray:
    return np.full((112, 112, 3), level, np.uint8)


def test_a_track_keeps_at_most_its_window_of_crops_and_only_recent_ones_are_averaged():
    steady = SteadyCrops(3)
    held = _crop(10)
    steady.add(1, held)
    held.fill(99)  # the track keeps its own copy, not the frame's array
    for seq, level in ((2, 20), (3, 30), (4, 40)):
        steady.add(seq, _crop(level))
    assert len(steady._crops) == 3  # frame 1's crop aged out
    earlier = steady.before(5)
    assert [int(c[0, 0, 0]) for c in earlier] == [30, 40]  # frames - 1 of them, never frame 5's own
    assert steady.before(4)[-1][0, 0, 0] == 30  # a frame's own crop is not its history
    assert steady.before(4 + 2 * 3) == []  # too old to be the same moment
    earlier[0].fill(0)  # the finish stage wipes its copies; the track's are untouched
    assert int(steady.before(5)[0][0, 0, 0]) == 30
    kept = [crop for _, crop in steady._crops]
    steady.add(40, _crop(70))  # a crop too old to be averaged is not kept either
    assert len(steady._crops) == 1 and not any(crop.any() for crop in kept)


def test_wiping_overwrites_every_crop_and_a_track_end_wipes_them():
    steady = SteadyCrops(5)
    steady.add(1, _crop(50))
    kept = steady._crops[0][1]
    steady.wipe()
    assert steady._crops == [] and not kept.any()
    track = Track(1, np.zeros(4, np.float32), 0)
    track.steady = SteadyCrops(5)
    track.steady.add(0, _crop(50))
    kept = track.steady._crops[0][1]
    tracker = Tracker(0.2, max_missed=1, window=5)
    tracker.tracks[1] = track
    tracker.update(5, [])  # lost for longer than max_missed: the track ends
    assert track.steady is None and not kept.any()
    drop_template(Track(2, np.zeros(4, np.float32), 0))  # nothing held: nothing to do


def _textured(seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).random((112, 112, 3)).astype(np.float32) * 255
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 2 - 128, 0, 255).astype(np.uint8)


def test_earlier_crops_are_registered_onto_the_last_before_the_mean():
    face = _textured()
    jittered = np.roll(face, (2, -3), axis=(0, 1))  # the keypoints were off by a few pixels
    naive = np.mean([jittered.astype(np.float32), face], axis=0)
    steadied = steady_mean([jittered, face]).astype(np.float32)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(steadied - face)[inner].mean() < 0.3 * np.abs(naive - face)[inner].mean()


def test_a_crop_that_does_not_register_is_left_out():
    face = _textured(1)
    assert np.array_equal(steady_mean([_textured(2), face]), face)  # another face: only the last counts
    assert np.array_equal(steady_mean([_crop(10), _crop(11)]), _crop(11))  # nothing to register on


def test_the_keys_have_bounds_and_1_turns_it_off():
    assert Config().quality.lowlight_steady_frames == 5 and Config().quality.lowlight_steady_below == 70.0
    with pytest.raises(Exception, match="lowlight_steady_frames"):
        parse_config({"quality": {"lowlight_steady_frames": 0}}, __import__("pathlib").Path("x.toml"))


def test_averaging_five_noisy_dark_frames_scores_a_genuine_face_higher_than_one(lfw, engine):
    import cv2

    from appliance.vision.align import align
    from lfr_tools.crowd import SHAPES, darken, listed_photos

    gains = []
    for name in ("Kurt_Warner", "Margaret_Thatcher", "John_Snow"):
        walking, enrolment = listed_photos(lfw / name)
        reference, _ = engine.embed_image(cv2.imread(str(enrolment)))
        small = cv2.resize(cv2.imread(str(walking)), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        det = engine.central_face(cv2.imread(str(walking))).det
        rng = np.random.default_rng(7)
        crops = [align(darken(small, SHAPES["night-1080p"], rng), det.keypoints * 0.25) for _ in range(5)]
        single = np.mean([float(reference @ engine.embedder.embed(c[None])[0]) for c in crops])
        averaged = float(reference @ engine.embedder.embed(steady_mean(crops)[None])[0])
        gains.append(averaged - single)
    assert min(gains) > 0.02, gains  # the embedder sees a cleaner face


def test_the_steady_bench_counts_scores_over_each_lists_threshold():
    from lfr_tools.bench.steady import summary

    s = {"single_genuine": np.array([0.5, 0.6, 0.7, 0.4]), "steady_genuine": np.array([0.65, 0.62]),
         "single_impostor": np.array([0.1, 0.61, 0.2, 0.3, 0.0, 0.65]), "steady_impostor": np.array([0.2, 0.59, 0.1])}
    out = summary(s, {8: 0.6, 1000: 0.64}, card_fmr=lambda t: 1e-5)
    assert out["list_8"]["genuine_over"] == {"single": 0.5, "steady": 1.0}
    assert out["list_8"]["impostor_over"] == {"single": 2, "steady": 0}
    assert out["list_8"]["entry_fmr"]["single"] == pytest.approx(2 / 6)
    assert out["list_1000"]["impostor_over"]["single"] == 1 and out["list_1000"]["card_entry_fmr"] == 1e-5
    assert out["impostor_max"] == {"single": 0.65, "steady": 0.59}


def test_without_lfw_dev_the_steady_bench_says_why(tmp_path, monkeypatch):
    from lfr_tools.bench import steady

    monkeypatch.setattr(steady, "LFW_DEV", tmp_path / "absent")
    assert "absent" in steady.run(tmp_path)["skipped"]


def test_a_steady_face_must_clear_the_threshold_of_a_list_twice_as_long():
    from appliance.thresholds import rule_for, steady_threshold, unit_model_id

    model = unit_model_id()
    rule = rule_for(model)
    assert steady_threshold(model, 8) == rule.threshold_for(16) == rule.floor  # short lists: the floor either way
    assert steady_threshold(model, 1000) == rule.threshold_for(2000) > rule.threshold_for(1000)
    assert steady_threshold(model, 10 ** 9) == 1.0  # no threshold holds the target: never a steady match


def test_the_pipeline_holds_a_steadied_face_to_the_stricter_threshold(engine):
    from types import SimpleNamespace

    from appliance.pipeline.frame import FrameProcessor
    from appliance.thresholds import steady_threshold

    processor = FrameProcessor(Config(), engine, lambda: None)
    class Listed(SimpleNamespace):
        def __len__(self) -> int:
            return 1000

    watchlist = Listed(threshold=0.6, model_id=engine.model_id, subject_refs=["A"] * 1000, entries=[])
    strict = steady_threshold(engine.model_id, 1000)
    assert strict > 0.6
    track = Track(1, np.zeros(4, np.float32), 0)
    face = SimpleNamespace(quality={"steady_frames": 5}, det=None)
    frame = SimpleNamespace(seq=3)
    score = (0.6 + strict) / 2  # over the list's threshold, under the steady one
    assert processor._update_track(frame, face, track, watchlist, 0, score) is None
    assert track.hits[-1].subject == -1  # not a hit
    face.quality = {}
    processor._update_track(frame, face, track, watchlist, 0, score)
    assert track.hits[-1].subject == 0  # the same score on a single frame is a hit
