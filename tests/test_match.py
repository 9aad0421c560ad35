"""Watchlist.top1: the int8 screen never changes the fp32 answer, and purge wipes both copies."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import WatchlistError
from appliance.pipeline.match import Int8Screen, Watchlist

DIM = 192


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def watchlist_of(matrix: np.ndarray) -> Watchlist:
    return Watchlist([f"s{i}" for i in range(len(matrix))], matrix, "test@0")


def assert_exact_top1(watchlist: Watchlist, probes: np.ndarray, threads: int = 1) -> None:
    best, score = watchlist.top1(probes, threads)
    exact = probes.astype(np.float64) @ watchlist.matrix.astype(np.float64).T
    for i in range(len(probes)):
        assert score[i] == pytest.approx(exact[i, best[i]], abs=1e-5), "reported score is the row's exact score"
        assert exact[i, best[i]] >= exact[i].max() - 1e-5, f"probe {i}: row {best[i]} is not the fp32 top-1"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 3000), probes=st.integers(1, 6),
       clustered=st.booleans())
def test_top1_is_the_exact_fp32_top1(seed, rows, probes, clustered):
    rng = np.random.default_rng(seed)
    matrix = unit_rows(rng, rows)
    if clustered:  # near-duplicates: many rows within the screen's error of each other
        matrix = matrix[:1] + 0.01 * rng.standard_normal((rows, DIM)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    near = matrix[rng.integers(0, rows, probes)] + 0.3 * rng.standard_normal((probes, DIM)).astype(np.float32)
    queries = np.concatenate([near, unit_rows(rng, probes)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert_exact_top1(watchlist_of(matrix), queries)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.01, 10.0))
def test_screen_error_stays_within_its_bound(seed, scale):
    rng = np.random.default_rng(seed)
    matrix = unit_rows(rng, 500) * np.float32(scale)  # the bound must not assume unit rows
    probes = rng.standard_normal((4, DIM)).astype(np.float32)
    screen = Int8Screen.of(matrix)
    screened, bound = screen.scores(probes, threads=1)
    exact = (matrix.astype(np.float64) @ probes.astype(np.float64).T)
    assert np.all(np.abs(screened - exact) <= bound[None, :])
    assert np.all(bound < 0.05 * scale * np.linalg.norm(probes, axis=1)), "the bound is tight enough to screen"


def test_bound_holds_where_each_quantisation_error_is_at_its_worst():
    """Rows and probes placed just below half a step, with the other side's error aligned to it."""
    rng = np.random.default_rng(11)
    levels = rng.integers(1, 50, (64, DIM)).astype(np.float32)  # one sign, so the errors add up
    step = np.float32(1 / 127)
    off_grid = (levels + 0.49) * step
    off_grid[0, 0] = 1.0  # fixes the matrix scale at 1/127
    on_grid = levels * step
    on_grid[0, 0] = 1.0
    aligned = np.ones((1, DIM), np.float32)  # quantises exactly: all error comes from the rows
    for matrix, probe in ((off_grid, aligned), (on_grid, (np.full((1, DIM), 100.49) * step).astype(np.float32))):
        if probe is not aligned:
            probe[0, 0] = 127 * step  # fixes the probe scale, leaving 0.49 of a step on every other entry
        screened, bound = Int8Screen.of(matrix).scores(probe, threads=1)
        error = np.abs(screened[:, 0] - (matrix.astype(np.float64) @ probe[0].astype(np.float64)))
        assert error.max() <= bound[0]
        assert error.max() > 0.5 * bound[0], "the case reaches the bound, so a missing term would show"


def test_the_screen_rescores_few_rows():
    """The screen is doing the work: a handful of rows reach the exact rescoring, not the list."""
    rng = np.random.default_rng(7)
    matrix = unit_rows(rng, 20_000)
    probes = np.concatenate([matrix[:20] + 0.05 * rng.standard_normal((20, DIM)).astype(np.float32),
                             unit_rows(rng, 20)])
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    rescored = [len(rows) for rows in Int8Screen.of(matrix).candidates(probes, threads=1)]
    assert max(rescored) <= 50, rescored
    assert watchlist_of(matrix).top1(probes[:20])[0].tolist() == list(range(20))


def test_threads_split_the_rows_without_changing_the_answer():
    rng = np.random.default_rng(3)
    watchlist = watchlist_of(unit_rows(rng, 10_001))
    probes = unit_rows(rng, 7)
    one, two, five = (watchlist.top1(probes, threads) for threads in (1, 2, 5))
    assert one[0].tolist() == two[0].tolist() == five[0].tolist()
    assert np.array_equal(one[1], five[1])
    assert_exact_top1(watchlist, probes, threads=5)
    assert_exact_top1(watchlist_of(unit_rows(rng, 3)), probes, threads=5)  # more threads than rows


def test_empty_list_and_zero_probe():
    empty = Watchlist([], np.zeros((0, DIM), np.float32), "test@0")
    best, score = empty.top1(unit_rows(np.random.default_rng(0), 2))
    assert score.tolist() == [-1.0, -1.0]
    watchlist = watchlist_of(unit_rows(np.random.default_rng(1), 50))
    best, score = watchlist.top1(np.zeros((1, DIM), np.float32))
    assert score[0] == 0.0 and 0 <= best[0] < 50


def test_purge_overwrites_the_matrix_and_its_codes():
    watchlist = watchlist_of(unit_rows(np.random.default_rng(2), 300))
    matrix, codes = watchlist.matrix, watchlist.screen.codes
    assert codes.any()
    watchlist.purge()
    assert not matrix.any() and not codes.any()
    assert len(watchlist) == 0 and watchlist.screen.codes.size == 0
    assert watchlist.top1(unit_rows(np.random.default_rng(0), 1))[1][0] == -1.0


def test_a_matrix_that_does_not_fit_its_refs_is_refused():
    with pytest.raises(WatchlistError, match="entry count"):
        Watchlist(["a", "b"], np.zeros((3, DIM), np.float32), "test@0")
