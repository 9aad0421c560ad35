"""Golden replay tests: a case is a config, a composed clip and the exact alerts expected.

Clips are composed from lfw-dev people: the watchlisted are enrolled from one
photo and walk past in another photo of theirs; the others are never enrolled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.config import parse_config
from lfr_tools.scenes import Actor, background, write_clip
from lfr_tools.replay import replay
from scene_helpers import cast_watchlist, two_photo_cast


@dataclass(frozen=True)
class Walk:
    """Who walks (index into the cast), when, and how big the face is."""

    who: int
    first: int
    last: int
    height: float
    y: float = 360.0
    x: tuple[float, float] = (100.0, 1180.0)


@dataclass(frozen=True)
class Case:
    name: str
    enrolled: tuple[int, ...]
    walks: tuple[Walk, ...]
    expected: dict[int, int]  # cast index -> number of alerts
    frames: int = 40


CASES = [
    Case("two_watchlisted_three_others", (0, 1),
         (Walk(0, 0, 30, 90, 250), Walk(1, 5, 35, 70, 480), Walk(2, 0, 39, 80, 150),
          Walk(3, 3, 39, 60, 600), Walk(4, 10, 39, 100, 380)), {0: 1, 1: 1}),
    Case("only_people_not_on_the_watchlist_gives_none", (0, 1),
         (Walk(2, 0, 39, 90, 200), Walk(3, 0, 39, 70, 400), Walk(4, 0, 30, 60, 600),
          Walk(5, 5, 39, 110, 300)), {}),
    # seconds apart, within [match] repeat_window_s: one alarm (the second pass is a repeat sighting
    # or re-joins the track); passes further apart than the window: tests/test_golden_repeats.py
    Case("same_person_passing_twice_within_the_window_gives_one_alert", (0,),
         (Walk(0, 0, 15, 80, 300, (100.0, 500.0)), Walk(0, 40, 55, 80, 420, (1180.0, 780.0)),
          Walk(3, 0, 55, 70, 150)), {0: 1}, 56),
    Case("small_far_face_still_alerts", (1,),
         (Walk(1, 0, 30, 40, 360, (100.0, 700.0)), Walk(4, 0, 30, 40, 200, (1100.0, 500.0))), {1: 1}),
    Case("empty_watchlist_gives_none", (), (Walk(0, 0, 30, 90, 300), Walk(1, 0, 30, 80, 500)), {}),
]


@pytest.fixture(scope="module")
def cast(engine, lfw):
    """Six people with two usable photos each: (enrolment photo, sprite from another photo)."""
    return two_photo_cast(engine, lfw, 6)


def _clip(folder: Path, cast, case: Case) -> None:
    actors = [Actor(cast[w.who][2], w.first, w.last, (w.x[0], w.y), (w.x[1], w.y + 20), w.height)
              for w in case.walks]
    write_clip(folder, background((1280, 720), seed=7), actors, case.frames)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_case(case, cast, engine, tmp_path):
    _clip(tmp_path / "clip", cast, case)
    cfg = parse_config({"unit": {"data_dir": str(tmp_path / "data")},
                        "capture": {"backend": "replay", "source": str(tmp_path / "clip"), "fps": 0.0}},
                       tmp_path / "golden.toml")
    watchlist = cast_watchlist(engine, cast, case.enrolled)
    result = replay(cfg, engine=engine, watchlist=watchlist)
    assert result.error is None
    got: dict[str, int] = {}
    for alert in result.alerts:
        got[alert.subject_ref] = got.get(alert.subject_ref, 0) + 1
    assert got == {cast[i][0]: n for i, n in case.expected.items()}
    tracks = [(a.track_id, a.subject_ref) for a in result.alerts]
    assert len(set(tracks)) == len(tracks), "more than one alert for one track and subject"
    assert result.counters["frames"] == case.frames
