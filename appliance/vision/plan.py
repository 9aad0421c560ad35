"""The deadline-driven search plan: which detector windows a frame gets within its time budget.

The budget is the frame interval at the source's rate (measured from the frames'
sequence numbers and arrival times; an unpaced replay is planned at a configured nominal
rate with fixed window costs, so it is reproducible). Each frame the plan takes focus
windows around the live tracks first, then discovery tiles, the ones unsearched longest
first, as long as their estimated cost fits what is left. Costs are measured as the
windows run (an EWMA per model input size), and so is the reserve left for the
embed/match stage on the other thread (its CPU time); a frame that overruns its deadline
cuts the estimate (deadline feedback). So an idle CPU searches more and a loaded one
searches less and counts it.

With the motion prior (motion.py) a tile where the frame changed, since it was last
searched, where no live track explains it ranks as if it had gone unsearched
``motion_boost_s`` longer: someone walking in is looked for where they walk in.

The coverage guarantee is the staleness of the smallest-scale tiles: how long the
part of the frame searched least recently for the smallest faces has gone unsearched.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np

COST_ALPHA = 0.2  # EWMA weight of a new window timing
RATE_ALPHA = 0.1  # EWMA weight of a new frame interval
INITIAL_COST_S = 0.008  # a window's assumed cost before any has been measured
NOMINAL_COST_S = 0.004  # an unpaced replay's cost of a 192 px window (the dev machine's, rounded up)
NOMINAL_INPUT_PX = 192
NEVER_S = 1e-3  # a tile never searched counts as searched this long before the first frame
FIT_SLACK_S = 1e-9  # float rounding: costs that add up to the budget exactly fit it
# how far the deadline feedback may scale the estimated budget: down to a quarter when windows
# cost more in a frame than measured one by one (workers sharing a loaded CPU, overheads), never
# above the estimate (more would eat the reserve of the embed/match stage, which it cannot see)
GAIN_RANGE = (0.25, 1.0)
GAIN_STEP = (0.8, 1.1)  # per frame: cut fast when a frame overran its deadline, grow slowly


@dataclass(frozen=True)
class PlanSettings:
    """What the plan is told once: see the [detect] keys of the same names in config.py."""

    budget_fraction: float = 0.7
    frame_budget_s: float = 0.0  # 0: the source's frame interval
    nominal_interval_s: float = 1 / 90
    min_discovery: int = 1
    workers: int = 1
    cpus: int = 2
    coverage_target_s: float = 0.5
    motion_boost_s: float = 0.0  # 0: no motion prior


@dataclass
class Choice:
    """One frame's plan: the focus windows and the indices of the discovery tiles to search."""

    focus: list
    tiles: list[int]
    budget_s: float
    planned_s: float
    started: float
    deadline_s: float  # the detection's share of the frame interval, in wall time
    overdue_left: int = 0
    staleness_s: float = 0.0  # how long the stalest smallest-scale tile had gone unsearched when planned
    limited: bool = False  # the budget left windows out
    at: float = 0.0  # the plan's time of the frame: ``started``, or for an unpaced replay its nominal time


class CostModel:
    """Seconds a window costs, per key (model and input size): an EWMA of measured runs."""

    def __init__(self, initial_s: float = INITIAL_COST_S) -> None:
        self.initial_s = initial_s
        self._cost: dict[Hashable, float] = {}
        self.lock = threading.Lock()

    def estimate(self, key: Hashable) -> float:
        """The expected cost of one window of ``key``."""
        return self._cost.get(key, self.initial_s)

    def observe(self, key: Hashable, seconds: float) -> None:
        """Fold one measured run into the estimate (called from the worker threads)."""
        with self.lock:
            old = self._cost.get(key)
            self._cost[key] = seconds if old is None else old + COST_ALPHA * (seconds - old)


def nominal_cost(key: Hashable) -> float:
    """The fixed cost an unpaced replay plans a window at: by its input pixels (key[1], the size)."""
    size = key[1] if isinstance(key, tuple) and len(key) > 1 else NOMINAL_INPUT_PX
    return NOMINAL_COST_S * (size / NOMINAL_INPUT_PX) ** 2


class FrameRate:
    """The source's frame interval from successive frames' sequence numbers and arrival times.

    Dividing by the sequence gap keeps frames dropped under overload from
    lengthening the interval (which would hand an overloaded CPU a larger budget).
    """

    def __init__(self, initial_s: float) -> None:
        self.interval_s = initial_s  # until two frames have been seen
        self._last: tuple[int, float] | None = None
        self._measured = False

    def observe(self, seq: int, now: float) -> float:
        """Record frame ``seq`` arriving at ``now``; return the current interval estimate."""
        if self._last is not None and seq > self._last[0]:
            step = (now - self._last[1]) / (seq - self._last[0])
            alpha = RATE_ALPHA if self._measured else 1.0
            self.interval_s += alpha * (step - self.interval_s)
            self._measured = True
        self._last = (seq, now)
        return self.interval_s


class TileAges:
    """When each discovery tile of one frame layout was last searched."""

    def __init__(self, sizes: Sequence[int], now: float) -> None:
        self.sizes = np.asarray(sizes)
        self.last = np.full(len(sizes), now - NEVER_S, np.float64)  # older than any tile searched since
        self.smallest = self.sizes == self.sizes.min() if len(sizes) else self.sizes.astype(bool)
        self.moved = np.zeros(len(sizes), bool)  # unexplained change since the tile was last searched

    def stalest_first(self, now: float, boost_s: float = 0.0) -> list[int]:
        """Tile indices, longest unsearched first, a tile that moved counting ``boost_s`` longer;
        ties go to the smaller tiles, which find the smaller faces."""
        return [int(i) for i in np.lexsort((self.sizes, self.last - boost_s * self.moved - now))]

    def note_motion(self, moved: Sequence[bool]) -> None:
        """Flag the tiles with unexplained change this frame (kept until each is searched)."""
        self.moved |= np.asarray(moved, bool)

    def searched(self, tiles: Sequence[int], now: float) -> None:
        """Mark ``tiles`` searched at ``now``."""
        self.last[list(tiles)] = now
        self.moved[list(tiles)] = False

    def staleness(self, now: float) -> float:
        """Seconds the least recently searched smallest-scale tile has gone unsearched."""
        return float((now - self.last[self.smallest]).max()) if self.smallest.any() else 0.0

    def overdue(self, now: float, target_s: float) -> np.ndarray:
        """A mask of the tiles unsearched for longer than ``target_s``."""
        return (now - self.last) > target_s


@dataclass
class SearchPlan:
    """Chooses each frame's windows within the frame budget and keeps the coverage figures."""

    settings: PlanSettings
    reserve: Callable[[], float] = lambda: 0.0  # seconds the embed/match stage takes a frame
    clock: Callable[[], float] = time.monotonic
    costs: CostModel = field(default_factory=CostModel)
    counters: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        """Forget the stream: a new one (its sequence numbers start again) is planned afresh."""
        self.rate = FrameRate(self.settings.nominal_interval_s)
        self._ages: TileAges | None = None
        self._layout: tuple = ()
        self._last_seq = -1
        self.worst_staleness_s = 0.0
        self.gain = 1.0
        self._origin = self.clock()  # an unpaced replay's frame 0, in plan time

    def interval(self, seq: int, now: float, paced: bool = True) -> float:
        """The frame interval frame ``seq`` is planned for (``paced`` False: an unpaced replay,
        planned at the nominal rate)."""
        s = self.settings
        measured = self.rate.observe(seq, now)
        if s.frame_budget_s > 0:
            return s.frame_budget_s
        return measured if paced else s.nominal_interval_s

    def budget(self, interval_s: float, paced: bool = True) -> float:
        """Worker-seconds of detection that fit one frame: the planned share of the interval on
        every CPU, less the embed/match reserve, and no more than the workers can run in it; scaled
        by the deadline feedback (what the estimate misses: workers sharing a loaded CPU, overheads).
        An unpaced replay gets the workers' share, neither reserve nor feedback (see ``choose``)."""
        s = self.settings
        share = interval_s * s.budget_fraction
        if not paced:
            return share * s.workers
        return self.gain * max(0.0, min(share * s.cpus - self.reserve(), share * s.workers))

    def choose(self, seq: int, layout: Sequence[tuple[int, Hashable]], focus: Sequence[tuple[object, Hashable]],
               paced: bool = True, moved: Sequence[bool] | None = None) -> Choice:
        """Plan frame ``seq``: ``layout`` is (size, cost key) per discovery tile, ``focus`` is
        (window, cost key) per live track in the tracker's order, ``moved`` (the motion prior)
        a flag per tile: unexplained change this frame.

        ``paced`` False (an unpaced replay) plans at the nominal rate with fixed nominal window
        costs, so a replayed clip gets the same windows on any machine under any load (golden
        tests, evaluation); nothing there waits for the clock, so nothing is lost by it."""
        started = self.clock()
        if seq <= self._last_seq:
            self._restart()
        self._last_seq = seq
        # an unpaced replay's tiles age in frames at the nominal rate, not in the wall time the
        # machine happened to take: the same clip gets the same windows on any machine
        now = started if paced else self._origin + seq * self.settings.nominal_interval_s
        ages = self._ages_for(layout, now)
        if moved is not None:
            ages.note_motion(moved)
        interval = self.interval(seq, started, paced)
        budget = self.budget(interval, paced)
        estimate = self.costs.estimate if paced else nominal_cost
        chosen, spent = [], 0.0
        for window, key in focus:
            cost = estimate(key)
            if spent + cost > budget + FIT_SLACK_S:
                self.counters["plan_windows_skipped"] += 1
                continue
            chosen.append(window)
            spent += cost
        tiles, spent = self._discovery(ages, layout, now, budget, spent, estimate)
        overdue = ages.overdue(now, self.settings.coverage_target_s)
        left = int(overdue.sum()) - int(overdue[tiles].sum()) if tiles else int(overdue.sum())
        limited = len(chosen) < len(focus) or len(tiles) < len(layout)
        return Choice(chosen, tiles, budget, spent, started, interval * self.settings.budget_fraction, left,
                      ages.staleness(now), limited, now)

    def _discovery(self, ages: TileAges, layout, now: float, budget: float, spent: float,
                   estimate: Callable[[Hashable], float]) -> tuple[list[int], float]:
        tiles = []
        for i in ages.stalest_first(now, self.settings.motion_boost_s):
            cost = estimate(layout[i][1])
            if spent + cost > budget + FIT_SLACK_S and len(tiles) >= self.settings.min_discovery:
                break
            tiles.append(i)
            spent += cost
        return tiles, spent

    def _ages_for(self, layout: Sequence[tuple[int, Hashable]], now: float) -> TileAges:
        sizes = tuple(size for size, _ in layout)
        if self._ages is None or sizes != self._layout:  # first frame, or the frame size changed
            self._ages, self._layout = TileAges(sizes, now), sizes
        return self._ages

    def _adapt(self, choice: Choice, wall: float) -> None:
        """Scale the budget by how the frame's wall time met its deadline: down when it overran,
        up only when the budget left windows out (an easy frame says nothing about a full one)."""
        if choice.planned_s <= 0 or choice.planned_s > choice.budget_s + FIT_SLACK_S:
            return  # nothing planned, or only the floor ran: the wall time says nothing of the budget
        step = min(GAIN_STEP[1], max(GAIN_STEP[0], choice.deadline_s / max(wall, 1e-6)))
        if step > 1 and not choice.limited:
            return
        self.gain = min(GAIN_RANGE[1], max(GAIN_RANGE[0], self.gain * step))

    def ran(self, key: Hashable, seconds: float) -> None:
        """A window of ``key`` took ``seconds`` to search (called from the worker threads)."""
        self.costs.observe(key, seconds)

    def done(self, choice: Choice) -> None:
        """Record a searched frame: tile ages, the coverage figures and whether it overran."""
        now = self.clock()
        if self._ages is None:  # choose() was not called: nothing was planned
            return
        self._ages.searched(choice.tiles, choice.at)
        staleness = choice.staleness_s
        self.worst_staleness_s = max(self.worst_staleness_s, staleness)
        c = self.counters
        c["plan_frames"] += 1
        c["plan_focus_windows"] += len(choice.focus)
        c["plan_discovery_windows"] += len(choice.tiles)
        c["plan_windows_skipped"] += choice.overdue_left
        wall = now - choice.started
        if wall > choice.deadline_s:  # the frame's detection missed its deadline
            c["plan_frames_over_budget"] += 1
        self._adapt(choice, wall)
        c["plan_budget_ms"] = round(choice.budget_s * 1000)
        c["plan_staleness_ms"] = round(staleness * 1000)
        c["plan_staleness_max_ms"] = round(self.worst_staleness_s * 1000)
