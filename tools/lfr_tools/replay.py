"""Run the unit on a replayed clip with an in-memory, unsigned watchlist (benchmarks, tests).

A unit in the field matches only the watchlist of a signed, active deployment; no config
key can change that. Tools that measure the pipeline (benchmarks, golden tests) lend the
unit an in-memory watchlist through the library instead (``Unit.open(watchlist=...)``),
and give the throwaway data directory its keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from appliance.config import Config, parse_config
from appliance.errors import WatchlistError
from appliance.keystore import unit_keystore
from appliance.paths import resolve
from appliance.pipeline.match import Watchlist
from appliance.pipeline.runner import RunResult
from appliance.unit import Unit
from appliance.vision.engine import EnrolmentReject, FaceEngine, decode_image


def enrol_plain(engine: FaceEngine, images: dict[str, str]) -> Watchlist:
    """An unsigned in-memory watchlist: subject ref -> image path (tools only)."""
    refs, vectors, entries = [], [], []
    for ref, path in images.items():
        try:
            enrolment = engine.enrol_image(decode_image(resolve(path)))
        except EnrolmentReject as exc:
            raise WatchlistError(f"cannot enrol {ref} from {path}: {exc.reason}",
                                 fix="use a sharp, frontal photo of one person") from None
        refs.append(ref)
        vectors.append(enrolment.embedding)
        entries.append({"subject_ref": ref, "category": "test", "thumbnail": enrolment.thumbnail_jpeg})
    matrix = np.stack(vectors) if vectors else np.zeros((0, 192), np.float32)
    return Watchlist(refs, matrix, engine.model_id, entries, deployment_id="in-memory")


def with_keys(cfg: Config) -> Config:
    """Give the config's data directory unit keys if it has none (a throwaway unit)."""
    store = unit_keystore(cfg)
    if not store.exists():
        store.init()
    return cfg


def replay(cfg: Config | dict, *, engine: FaceEngine | None = None,
           watchlist: Watchlist | Callable[[], Watchlist | None] | None = None,
           enrol: dict[str, str] | None = None, sinks: dict[str, Callable] | None = None,
           config_path: Path = Path("replay.toml")) -> RunResult:
    """Run the unit on ``cfg``'s replay with ``watchlist`` (a Watchlist or a provider), or one
    enrolled from ``enrol`` with the unit's engine."""
    cfg = with_keys(parse_config(cfg, config_path) if isinstance(cfg, dict) else cfg)
    provider = watchlist if callable(watchlist) else (lambda: held)
    with Unit.open(cfg, engine=engine, watchlist=provider) as unit:
        held = watchlist if watchlist is not None else enrol_plain(unit.engine, enrol or {})
        for name, sink in (sinks or {}).items():
            unit.sinks.register(name, sink)
        return unit.run(install_signals=False)
