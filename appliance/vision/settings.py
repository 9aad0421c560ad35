"""The vision sections of the appliance config: [detect], [quality] and [track].

Declared next to the code that reads them (Frigate's habit); config.py gathers them.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..settings import Section


class DetectConfig(Section):
    """Face detector settings."""

    model: Literal["blazeface-full", "blazeface-short"] = "blazeface-full"
    score_threshold: float = Field(0.5, ge=0.05, le=0.99)
    nms_iou: float = Field(0.3, ge=0.05, le=0.95)
    tile_sizes: list[int] = Field([320, 768], max_length=4,
                                  description="edges of the square tiles covering the frame, px")
    tile_overlap: float = Field(0.25, ge=0.0, le=0.5)
    whole_frame: bool = True
    search_plan: Literal["deadline", "fixed"] = Field(
        "deadline", description="deadline: fill each frame's time budget, stalest tiles first; fixed: tiles in turn")
    discovery_windows: int = Field(2, ge=0, le=256, description="fixed plan: tiles per frame in turn (0: all); "
                                                                "deadline plan: the least per frame, even over budget")
    focus_tracks: bool = Field(True, description="short-range search around the live tracks")
    focus_windows: int = Field(0, ge=0, le=256, description="focus windows per frame at most, tracks least recently "
                                                            "found first (0: every track; was 8 in the fixed plan)")
    focus_merge_scale: float = Field(
        6.0, ge=0.0, le=8.0, description="tracks close together share one focus window while it stays within this "
                                         "many times the smallest face's side (2.5 or less: a window per track)")
    frame_budget_ms: float = Field(0.0, ge=0.0, le=10000.0, description="deadline plan: the frame interval to plan "
                                                                        "for (0: the source's, measured)")
    nominal_fps: float = Field(90.0, ge=1.0, le=240.0, description="deadline plan: an unpaced replay is planned as "
                                                                   "frames of this rate, with fixed window costs")
    budget_fraction: float = Field(0.7, ge=0.1, le=1.0, description="deadline plan: the share of each frame interval "
                                                                    "detection may fill (the rest: latency headroom)")
    workers: int = Field(2, ge=1, le=8, description="threads searching a frame's windows, each with its own models")
    coverage_target_s: float = Field(0.5, ge=0.05, le=60.0, description="deadline plan: a tile unsearched this long "
                                                                        "is overdue (plan_windows_skipped)")
    motion_boost_s: float = Field(1.0, ge=0.0, le=10.0, description="deadline plan: a tile that changed where no "
                                  "live track explains it is searched as if unsearched this much longer (0: off)")
    lowlight_lift_below: float = Field(
        70.0, ge=0.0, le=255.0,
        description="a frame darker than this mean grey is searched on a gained copy (0: never)")
    lowlight_max_gain: float = Field(3.0, ge=1.0, le=8.0, description="the most that copy is gained")

    @model_validator(mode="after")
    def _searchable(self) -> "DetectConfig":
        if any(not 64 <= t <= 4096 for t in self.tile_sizes):
            raise ValueError("every tile size must be between 64 and 4096 px")
        if not self.tile_sizes and not self.whole_frame:
            raise ValueError("tile_sizes is empty and whole_frame is false: nothing would be searched; "
                             "list tile sizes or set whole_frame = true")
        deadline_only = sorted(DEADLINE_KEYS & self.model_fields_set)
        if self.search_plan == "fixed" and deadline_only:
            raise ValueError(f"{', '.join(deadline_only)} only apply to search_plan = \"deadline\"; "
                             "remove them or choose the deadline plan")
        return self


DEADLINE_KEYS = frozenset({"frame_budget_ms", "nominal_fps", "budget_fraction", "coverage_target_s",
                           "motion_boost_s"})  # not "fixed"


class QualityConfig(Section):
    """Quality gate: faces failing any check are counted and dropped."""

    min_face_px: int = Field(24, ge=8, le=512)
    min_sharpness: float = Field(15.0, ge=0.0, le=5000.0)
    min_brightness: float = Field(40.0, ge=0.0, le=255.0)
    max_brightness: float = Field(225.0, ge=0.0, le=255.0)
    max_yaw: float = Field(0.6, ge=0.0, le=1.0, description="nose offset / eye distance")
    lowlight_min_brightness: float = Field(
        15.0, ge=0.0, le=255.0,
        description="a face darker than min_brightness is kept down to this mean grey when its contrast allows "
                    "(at or above min_brightness: no low-light rule)")
    lowlight_min_contrast: float = Field(
        8.0, ge=0.0, le=128.0, description="grey standard deviation a face below min_brightness needs")
    lowlight_sharpness_gain: float = Field(
        2.0, ge=1.0, le=8.0,
        description="a dark face's sharpness (below min_brightness, or on a frame the detector lifted) is judged "
                    "as if exposed normally, gain up to this (1: off)")
    lowlight_steady_frames: int = Field(
        5, ge=1, le=15,
        description="a face darker than lowlight_steady_below is embedded as the mean of its track's last this many "
                    "aligned crops (sensor noise averages out; 1: off)")
    lowlight_steady_below: float = Field(70.0, ge=0.0, le=255.0, description="mean grey of the aligned face")

    @model_validator(mode="after")
    def _brightness_order(self) -> "QualityConfig":
        if self.min_brightness >= self.max_brightness:
            raise ValueError("min_brightness must be below max_brightness")
        return self


class TrackConfig(Section):
    """Tracker settings."""

    iou_min: float = Field(0.2, ge=0.0, le=1.0)
    max_missed_frames: int = Field(15, ge=1, le=1000)
    rejoin_s: float = Field(3.0, ge=0.0, le=60.0, description="a new track starting where a track lost up to this "
                            "many seconds (capture time) ago was heading continues it (0: never re-join)")
