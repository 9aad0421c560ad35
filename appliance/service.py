"""Assembling the running appliance from its config: engine, watchlist, source, runner."""
from __future__ import annotations

import json
import logging
import time
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

logger = logging.getLogger(__name__)


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
                    alert_sinks=alert_sinks if alert_sinks is not None else [stdout_sink], events=events,
                    counters_every_s=cfg.audit.counters_every_s)
    return runner.run(install_signals=install_signals)


def model_hashes(cfg: Config) -> dict[str, str]:
    """SHA-256 of the model files this config runs (recorded at service start)."""
    from .modelstore import load_manifest  # noqa: PLC0415

    specs = load_manifest()
    names = [cfg.detect.model, "mobilefacenet"] + (["blazeface-short"] if cfg.detect.focus_tracks else [])
    return {name: specs[name].sha256 for name in dict.fromkeys(names)}


DECISIONS = {"confirm": "confirmed", "reject": "rejected", "unable": "unable"}


def _open_publisher(cfg: Config, audit_log):
    """The MQTT publisher with its durable outbox, wired to the audit log (None when disabled)."""
    if not cfg.mqtt.enabled:
        return None
    from .keystore import open_keystore  # noqa: PLC0415
    from .mqtt.publisher import AlertPublisher  # noqa: PLC0415

    def expired(row) -> None:
        audit_log.append("alert_expired", {"alert_id": row.alert_id, "age_s": round(time.time() - row.created, 1)})

    def adjudicated(adj: dict) -> None:
        audit_log.append("adjudication", {"alert_id": adj["alert_id"], "decision": DECISIONS[adj["decision"]],
                                    "officer_ids": list(adj["officer_ids"]), "time": adj["time"]})

    keystore = open_keystore(cfg.watchlist.keystore, resolve(cfg.unit.data_dir))
    return AlertPublisher.open(cfg, keystore, on_expired=expired, on_adjudication=adjudicated)


def run_service(cfg: Config, extra_sinks: list[Callable[[Alert], None]] | None = None,
                engine: FaceEngine | None = None, install_signals: bool = True) -> RunResult:
    """The unit's main job: the pipeline with the audit log first in line (fail closed).

    An alert reaches the MQTT outbox (when [mqtt] enabled) and stdout only after
    its audit entry is committed; if the log cannot be written, matching stops
    and the unit's MQTT status says why.
    """
    from .audit.sink import AuditSink, open_audit_log, service_start_payload  # noqa: PLC0415

    engine = engine or FaceEngine.from_config(cfg)  # backend and models first: nothing touched yet
    audit_log = open_audit_log(cfg)
    audit = AuditSink(audit_log)
    publisher = None
    try:
        publisher = _open_publisher(cfg, audit_log)
        audit_log.append("service_start", service_start_payload(cfg, model_hashes(cfg),
                                                          engine.detector.net.model.backend))
        later = [publisher.submit] if publisher else []
        sinks = [audit.alert, *later, *(extra_sinks if extra_sinks is not None else [stdout_sink])]
        result = run_pipeline(cfg, alert_sinks=sinks, events=audit.event, engine=engine,
                              install_signals=install_signals)
        if result.error and publisher:
            publisher.set_status("degraded", result.error.message[:200])
        _append_quietly(audit_log, "service_stop", {"reason": "error" if result.error else "source ended or signal"})
        return result
    finally:
        if publisher:
            publisher.close()
        audit_log.close()


def _append_quietly(audit_log, kind: str, payload: dict) -> None:
    """Best-effort entry at shutdown: a full log must not hide the error that stopped the run."""
    from .errors import AuditError  # noqa: PLC0415

    try:
        audit_log.append(kind, payload)
    except AuditError as exc:
        logger.warning("could not audit %s: %s", kind, exc.message)
