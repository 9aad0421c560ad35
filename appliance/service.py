"""Assembling the running appliance from its config: engine, watchlist, source, runner."""
from __future__ import annotations

import json
import logging
import sys
from typing import Callable

import numpy as np

from . import capture
from .config import Config, resolve
from .errors import WatchlistError
from .pipeline.alert import Alert
from .pipeline.frame import FrameProcessor, WatchlistProvider
from .pipeline.match import Watchlist
from .pipeline.runner import EventSink, RunResult, Runner
from .vision.engine import EnrolmentReject, FaceEngine, decode_image

log = logging.getLogger(__name__)


def enrol_plain(engine: FaceEngine, images: dict[str, str]) -> Watchlist:
    """In-memory demo enrolment: subject ref -> image path (no bundle, no signature)."""
    refs, vectors, entries = [], [], []
    for ref, path in images.items():
        try:
            enrolment = engine.enrol_image(decode_image(resolve(path)))
        except EnrolmentReject as exc:
            raise WatchlistError(f"cannot enrol {ref} from {path}: {exc.reason}",
                                 fix="use a sharp, frontal photo of one person") from None
        refs.append(ref)
        vectors.append(enrolment.embedding)
        entries.append({"subject_ref": ref, "category": "demo", "thumbnail": enrolment.thumbnail_jpeg})
    matrix = np.stack(vectors) if vectors else np.zeros((0, 192), np.float32)
    return Watchlist(refs, matrix, engine.model_id, entries, deployment_id="demo")


def stdout_sink(alert: Alert) -> None:
    """Print an alert as one JSON line (no image bytes)."""
    print(json.dumps(alert.summary(), sort_keys=True), flush=True)


def default_watchlist(cfg: Config, engine: FaceEngine, events: EventSink | None = None) -> WatchlistProvider:
    """The demo enrolment from [demo_watchlist]; else, when [watchlist] trusts an authority, the
    active signed deployment (docs/watchlist.md; None outside one, G10); else no watchlist."""
    if cfg.demo_watchlist.enrol:
        watchlist = enrol_plain(engine, cfg.demo_watchlist.enrol)
        return lambda: watchlist
    if cfg.watchlist.trusted_authorities:
        from .watchlist.deployment import open_deployment  # noqa: PLC0415

        return open_deployment(cfg, engine.model_id, audit=events).current_watchlist
    return lambda: None


def run_pipeline(cfg: Config, alert_sinks: list[Callable[[Alert], None]] | None = None,
                 events: EventSink | None = None, watchlist: WatchlistProvider | None = None,
                 engine: FaceEngine | None = None, install_signals: bool = True) -> RunResult:
    """Run the configured source through the pipeline until it ends or a signal stops it."""
    engine = engine or FaceEngine.from_config(cfg)
    provider = watchlist or default_watchlist(cfg, engine, events)
    processor = FrameProcessor(cfg, engine, provider)
    source = capture.choose(cfg.capture.backend).open_source(cfg.capture)
    runner = Runner(processor, source, cfg.runner.queue_size,
                    alert_sinks=alert_sinks if alert_sinks is not None else [stdout_sink], events=events)
    return runner.run(install_signals=install_signals)
