"""Match thresholds that follow the watchlist's size, from the model's accuracy card (G7).

Each non-mated passer-by is compared with every entry, so at a fixed threshold
false alerts grow with the list. The accuracy card of a model (package data
``appliance/data/accuracy/*.json``, pinned with the model by its id) carries the
per-entry false match rate p(T) measured on impostor pairs of the calibration
split, with the tail beyond the measured pairs extrapolated (method in
docs/accuracy.md). The expected false-positive identification rate of a list of
N entries at threshold T is then FPIR(T, N) = 1 - (1 - p(T))^N, and the threshold
for a list is the lowest T whose expected FPIR is within the target (1 in 1,000,
the South Wales SOP).

The floor is the card's threshold for its smallest tabulated list (100 entries):
no configuration can go below it, and a smaller list still gets the floor.
A configured threshold may only be higher than the rule's threshold for the list
in use: one whose expected FPIR exceeds the target is refused, naming it.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ApplianceError, ConfigError, ModelError

CARD_DIR = Path(__file__).resolve().parent / "data" / "accuracy"
TARGET_FPIR = 1e-3
STEPS = 10_000  # thresholds are chosen to 1e-4
_FIX_CARD = "run `appliance eval ... --card models/accuracy/NAME.json` for this model and ship the card"


@dataclass(frozen=True)
class ListSizeRule:
    """p(T), the per-entry false match rate, tabulated on ascending thresholds (log10)."""

    model_id: str
    thresholds: np.ndarray
    log10_entry_fmr: np.ndarray
    target_fpir: float = TARGET_FPIR
    floor_list_size: int = 100

    def entry_fmr(self, threshold: float) -> float:
        """p(T), interpolated in log space (held at the table's ends)."""
        return float(10.0 ** np.interp(threshold, self.thresholds, self.log10_entry_fmr))

    def expected_fpir(self, threshold: float, list_size: int) -> float:
        """Expected FPIR of a list of ``list_size`` entries at ``threshold`` (independent entries)."""
        p = min(self.entry_fmr(threshold), 1.0 - 1e-12)
        return float(-math.expm1(max(1, list_size) * math.log1p(-p)))

    def threshold_for(self, list_size: int, target: float | None = None) -> float:
        """Lowest threshold (to 1e-4) whose expected FPIR for the list is within ``target``,
        never below the floor (the threshold of the smallest tabulated list)."""
        target = self.target_fpir if target is None else target
        size = max(list_size, self.floor_list_size)
        lo, hi = float(self.thresholds[0]), float(self.thresholds[-1])
        if self.expected_fpir(hi, size) > target:
            raise ConfigError(f"the accuracy card of {self.model_id} cannot hold FPIR {target:g} for a list of "
                              f"{list_size} entries (expected {self.expected_fpir(hi, size):.2%} even at {hi:.3f})",
                              fix="split the watchlist or use a more accurate model")
        lo_k, hi_k = math.floor(lo * STEPS), math.ceil(hi * STEPS)  # search whole steps of 1e-4
        while hi_k - lo_k > 1:
            mid = (lo_k + hi_k) // 2
            lo_k, hi_k = (lo_k, mid) if self.expected_fpir(mid / STEPS, size) <= target else (mid, hi_k)
        return hi_k / STEPS

    @property
    def floor(self) -> float:
        """The threshold no configuration may undercut: that of the smallest tabulated list."""
        return self.threshold_for(self.floor_list_size)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a deployment runs at, its expected FPIR for the list, and where it came from."""

    model_id: str
    list_size: int
    threshold: float
    expected_fpir: float
    target_fpir: float
    rule_threshold: float   # the card's threshold for this list
    floor: float
    source: str             # "card" or "configured"

    def to_dict(self) -> dict:
        """Plain JSON-able fields (status, console)."""
        return asdict(self)

    def audit_fields(self) -> dict:
        """The choice as ``watchlist_load`` audit fields (G7: the threshold and its error rate)."""
        return {"threshold": round(self.threshold, 4), "expected_fpir": float(f"{self.expected_fpir:.3g}"),
                "target_fpir": self.target_fpir, "threshold_source": self.source,
                "threshold_floor": round(self.floor, 4)}


def _cards(card_dir: Path) -> dict[str, dict]:
    cards = {}
    for path in sorted(Path(card_dir).glob("*.json")):
        card = json.loads(path.read_text())
        if isinstance(card, dict) and "model_id" in card:
            cards[card["model_id"]] = card
    return cards


@lru_cache(maxsize=8)
def rule_for(model_id: str, card_dir: Path = CARD_DIR) -> ListSizeRule:
    """The list-size rule of ``model_id`` from its shipped accuracy card; ModelError if none."""
    card = _cards(card_dir).get(model_id)
    if card is None or "list_size_rule" not in card:
        raise ModelError(f"no accuracy card with a list-size rule for model {model_id} in {card_dir}",
                         fix=_FIX_CARD)
    rule = card["list_size_rule"]
    curve = rule["curve"]
    return ListSizeRule(model_id, np.asarray(curve["threshold"], np.float64),
                        np.asarray(curve["log10_entry_fmr"], np.float64),
                        float(rule["target_fpir"]), int(rule["floor_list_size"]))


def choose(model_id: str, list_size: int, configured: float | None = None,
           target: float | None = None) -> ThresholdChoice:
    """The threshold for a list: the card's, or a configured one if its expected FPIR is within target.

    Raises ConfigError naming the expected FPIR when the configured threshold is too low for the list.
    """
    rule = rule_for(model_id)
    target = rule.target_fpir if target is None else target
    rule_t = rule.threshold_for(list_size, target)
    chosen, source = (rule_t, "card") if configured is None else (float(configured), "configured")
    expected = rule.expected_fpir(chosen, list_size)
    if source == "configured" and chosen < rule_t:
        raise ConfigError(
            f"[match] threshold {chosen:.3f} gives an expected FPIR of {expected:.2%} on this "
            f"{list_size}-entry watchlist (target {target:.2%}; model {model_id})",
            fix=f"raise [match] threshold to at least {rule_t:.3f}, or remove it to use the card's "
                "threshold for the list")
    return ThresholdChoice(model_id, list_size, chosen, expected, target, rule_t, rule.floor, source)


def status(model_id: str, list_size: int, configured: float | None = None) -> dict:
    """:func:`choose` as a status dict; ``{"refused": why}`` where the choice is refused."""
    try:
        return choose(model_id, list_size, configured).to_dict()
    except ApplianceError as exc:
        return {"refused": exc.message}


def unit_model_id() -> str:
    """Id of the embedder the unit runs on the CPU (the pinned MobileFaceNet), from the manifest."""
    from .modelstore import load_manifest  # noqa: PLC0415

    return load_manifest()["mobilefacenet"].model_id


def unit_floor(model_id: str | None = None) -> float:
    """The floor of the unit's model: the card's threshold for its smallest tabulated list."""
    return rule_for(model_id or unit_model_id()).floor


STEADY_LIST_FACTOR = 2  # bench --only steady: a steady night embedding's entry FMR was 0.8-1.8x the card's


@lru_cache(maxsize=64)
def steady_threshold(model_id: str, list_size: int) -> float:
    """The threshold a steady embedding (a dark face averaged over frames, vision/lowlight.py) must
    clear: the card's for a list STEADY_LIST_FACTOR times as long, so that an entry false-match
    rate up to that factor above the card's keeps the list's expected FPIR within target. 1.0
    (never a match) where the card cannot hold the target for so long a list."""
    try:
        return rule_for(model_id).threshold_for(STEADY_LIST_FACTOR * max(list_size, 1))
    except ConfigError:
        return 1.0
