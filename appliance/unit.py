"""The van unit, built once from its Config: the one place its parts are assembled.

A :class:`Unit` opens exactly one key store and hands it to every part that signs or
decrypts (audit heads, MQTT payloads, the deployment's watchlist), so everything the
unit signs is signed by the same key. It owns, as context-managed parts closed in
reverse order: the face engine, the audit log, the MQTT publisher and its outbox (in
the audit database), the deployment (the signed watchlist in memory), the alert sinks
and the supervisor. ``appliance run``, the demo, the benchmarks and the tests build it
the same way::

    with Unit.open(cfg) as unit:
        unit.sinks.register("stdout", stdout_sink)
        result = unit.run()

:meth:`Unit.status` is the one status the service, ``appliance selftest``, the MQTT
heartbeat and the officers' console read.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from typing import Callable

from . import capture
from .audit.log import AuditLog
from .board import resolve_profile
from .failover import fail_over
from .audit.sink import AuditSink, adjudication_callbacks, open_audit_log, service_start_payload
from .capture.base import FrameSource
from .capture.reconnect import ReconnectingSource
from .config import Config
from .errors import ApplianceError, AuditError
from .keystore import KeyStore, unit_keystore
from .pipeline.frame import FrameProcessor, WatchlistProvider
from .pipeline.runner import RunResult, Runner
from .pipeline.supervisor import Supervisor
from .sinks import AlertSinks, DurableCommit
from .vision.engine import FaceEngine

log = logging.getLogger(__name__)

def model_hashes(engine: FaceEngine) -> dict[str, str]:
    """SHA-256 of every weights file the engine runs (recorded at service start): whatever the
    backend (BlazeFace and MobileFaceNet on the CPU, HEFs on the NPU, the face mesh)."""
    return {model.name: model.file_sha256 for model in engine.models()}


class Unit:
    """One van unit: parts opened once from the config, one status, one supervised run."""

    def __init__(self, cfg: Config, keystore: KeyStore) -> None:
        self.cfg = cfg
        self.keystore = keystore
        self.supervisor = Supervisor()
        self._stack = ExitStack()
        self._state = ("starting", "")
        self._lock = threading.Lock()
        self.engine: FaceEngine | None = None
        self.audit: AuditLog | None = None
        self.events: AuditSink | None = None
        self.publisher = None
        self.retention = None
        self.resolution = None
        self.deployment = None
        self.watchlist: WatchlistProvider = lambda: None
        self.sinks: AlertSinks | None = None
        self.runner: Runner | None = None
        self.camera: ReconnectingSource | None = None

    # -- assembly ----------------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: Config, *, engine: FaceEngine | None = None,
             watchlist: WatchlistProvider | None = None) -> "Unit":
        """Open every part; on any error close what was opened and raise it.

        ``engine`` lends an already loaded engine (the caller keeps and closes it).
        ``watchlist`` replaces the deployment with an in-memory provider: for tools and
        tests only; a unit in the field matches only a signed, active deployment, and no
        config key can do this.
        """
        unit = cls(cfg, unit_keystore(cfg))
        try:
            unit._open_parts(engine, watchlist)
        except BaseException:
            unit.close()
            raise
        return unit

    def _open_parts(self, engine: FaceEngine | None, watchlist: WatchlistProvider | None) -> None:
        # the board profile's backends (or their allowed fallbacks), then the models and the keys:
        # none of them changes anything on disk
        self.resolution = resolve_profile(self.cfg)
        self.cfg = self.resolution.config(self.cfg)
        self._owns_engine = engine is None
        self.engine = engine or self._stack.enter_context(FaceEngine.from_config(self.cfg))
        self.keystore.signing_key()
        self.audit = open_audit_log(self.cfg, self.keystore)
        self._stack.callback(self._close_audit)
        self.events = AuditSink(self.audit)
        self.supervisor = Supervisor(self.events.event)
        for kind, payload in self.resolution.audit_events():  # each fallback the profile allowed (backend_fallback)
            self.audit.append(kind, payload)
        self.publisher = self._open_publisher()
        if self.publisher is not None and self.resolution.degraded:
            self.publisher.set_status("degraded", "; ".join(f.detail() for f in self.resolution.fallbacks)[:200])
        self.retention = self._open_retention()
        self.audit.append("service_start", service_start_payload(self.cfg, model_hashes(self.engine),
                                                                 self.engine.backend))
        self.watchlist = watchlist or self._open_deployment()
        self._publish_last_record()
        self.sinks = AlertSinks(DurableCommit(self.audit, self.publisher), self.supervisor)

    def _open_publisher(self):
        """The MQTT publisher with its outbox in the audit database (None when [mqtt] is off)."""
        if not self.cfg.mqtt.enabled:
            return None
        from .mqtt.publisher import AlertPublisher  # noqa: PLC0415

        publisher = AlertPublisher.open(
            self.cfg, self.keystore, self.audit.db_path, on_expired=self._alert_expired,
            on_pump_fault=self._pump_fault, heartbeat_fields=self.heartbeat_fields,
            message_expiry_s=int(self.cfg.retention.alert_images_hours * 3600), **adjudication_callbacks(self.audit))
        self._stack.callback(publisher.close)
        return publisher

    def _open_retention(self):
        """Alert-image retention over the outbox (None without MQTT: no image is kept then)."""
        if self.publisher is None:
            return None
        from .retention import AlertImageRetention  # noqa: PLC0415

        retention = AlertImageRetention(self.publisher.outbox, self.audit.append,
                                        alert_images_hours=self.cfg.retention.alert_images_hours,
                                        resend_window_s=self.publisher.resend_window_s,
                                        supervisor=self.supervisor)
        retention.start(self.cfg.retention.sweep_every_s)
        self._stack.callback(retention.close)  # stop sweeping, then the shutdown pass
        return retention

    def _open_deployment(self) -> WatchlistProvider:
        """The signed deployment's watchlist provider (None outside an active deployment, G10)."""
        if not self.cfg.watchlist.trusted_authorities:
            return lambda: None
        from .watchlist.deployment import open_deployment  # noqa: PLC0415

        self.deployment = open_deployment(self.cfg, self.keystore, self.engine.model_id, audit=self.events.event,
                                          on_end=self._deployment_ended)
        self._stack.callback(self.deployment.close)
        return self.deployment.current_watchlist

    # -- hooks of the parts --------------------------------------------------------------------
    def _alert_expired(self, row) -> None:
        self.audit.append("alert_expired", {"alert_id": row.alert_id, "age_s": round(time.time() - row.created, 1)})

    def _deployment_ended(self, deployment_id: str) -> None:
        """A deployment ended (here, by expiry, or by `appliance deployment end`): its alert
        images go, and its signed deployment record goes to the van (lfr/v1/<unit>/record)."""
        if self.retention is not None:
            self.retention.deployment_ended(deployment_id)
        self._publish_record(deployment_id)

    def _publish_record(self, deployment_id: str) -> None:
        if self.publisher is None:
            return
        from .audit.record import record_from_db  # noqa: PLC0415

        try:
            self.publisher.publish_record(record_from_db(self.audit.db_path, deployment_id,
                                                         self.cfg.match.threshold))
        except (ValueError, ApplianceError) as exc:  # no trace of it in this log, or the log is unreadable
            log.warning("no deployment record for %s: %s", deployment_id, exc)

    def _publish_last_record(self) -> None:
        """At start: the last ended deployment's record again (retained; it may have ended while
        the unit was off, or the broker may have lost it)."""
        if self.deployment is not None and self.publisher is not None:
            last = self.deployment.status().get("last")
            if last:
                self._publish_record(last["deployment_id"])

    def _pump_fault(self, exc: BaseException, fatal: bool) -> None:
        self.supervisor.fault("mqtt", exc, fatal)

    # -- running -------------------------------------------------------------------------------
    def run(self, source: FrameSource | None = None, install_signals: bool = True) -> RunResult:
        """Run the configured source (or ``source``) through the pipeline until it ends,
        a signal arrives or a fault stops it; the result's error says which fault. When the
        inference backend fails mid-run and the board allows a fallback, the pipeline starts
        again on the fallback backend (appliance/failover.py) instead of stopping."""
        while True:
            result = self._run_once(source, install_signals)
            if not fail_over(self, result):
                break
            source = None  # the first run closed it: reopen from the config
        self._stopped(result)
        return result

    def _run_once(self, source: FrameSource | None, install_signals: bool) -> RunResult:
        processor = FrameProcessor(self.cfg, self.engine, self.watchlist)
        self.runner = Runner(processor, source or self._open_source(), self.cfg.runner.queue_size,
                             deliver=self.sinks, events=self.events.event,
                             counters_every_s=self.cfg.audit.counters_every_s, supervisor=self.supervisor)
        if self.supervisor.error is not None:  # a part failed before the run (e.g. the outbox pump gave up)
            return RunResult(error=self.supervisor.error)
        self._set_state("running")
        with self.sinks:
            return self.runner.run(install_signals=install_signals)

    def replace_engine(self, engine: FaceEngine, cfg: Config) -> None:
        """Run on ``engine`` from now on (an inference fallback): the old one is closed, the
        deployment loads the new model's entries, the supervisor forgets the fault that stopped
        the last run (it is audited)."""
        old, self.engine, self.cfg = self.engine, engine, cfg
        self._stack.callback(engine.close)
        if self._owns_engine:
            old.close()
        if self.deployment is not None:
            self.deployment.use_model(engine.model_id)
        self.supervisor.recover()

    def _open_source(self) -> FrameSource:
        """The configured source; a live camera comes wrapped so that a loss reconnects."""
        if capture.capture_module(self.cfg.capture.backend).RECONNECTS:
            self.camera = ReconnectingSource(lambda: capture.open_source(self.cfg.capture),
                                             on_lost=self._camera_lost, on_restored=self._camera_back)
            return self.camera
        with self.supervisor.guard("capture"):
            return capture.open_source(self.cfg.capture)
        return _NoSource()

    def _camera_lost(self, error) -> None:
        self.supervisor.fault("capture", error, fatal=False)  # audited as camera_lost
        self._set_state("camera_lost", error.message[:200])

    def _camera_back(self, down_s: float, attempts: int) -> None:
        log.info("camera back after %.1f s (%d attempt(s))", down_s, attempts)
        self._set_state("running")

    def last_progress_mono(self) -> float | None:
        """When the pipeline last showed life: a finished frame, or an attempt to get the camera
        back (the systemd watchdog's clock: a unit reconnecting its camera is not hung)."""
        times = [self.runner.last_frame_mono if self.runner else None,
                 self.camera.last_attempt_mono if self.camera else None]
        return max((t for t in times if t is not None), default=None)

    def _stopped(self, result: RunResult) -> None:
        error = result.error
        self._set_state("faulted" if error else "stopped", error.message[:200] if error else "")
        if error and self.publisher:
            self.publisher.set_status("degraded", error.message[:200])
        try:
            self.audit.append("service_stop", {"reason": "error" if error else "source ended or signal"})
        except AuditError as exc:  # a full log must not hide the error that stopped the run
            log.warning("could not audit service_stop: %s", exc.message)

    def stop(self) -> None:
        """Ask a running unit to stop (signal handlers, the console, tests)."""
        if self.runner is not None:
            self.runner.stop()

    # -- status --------------------------------------------------------------------------------
    def _set_state(self, state: str, reason: str = "") -> None:
        with self._lock:
            self._state = (state, reason)
        if self.publisher is not None:
            self.publisher.beat_soon()

    def status(self) -> dict:
        """The unit's state for the service, selftest, heartbeat and console (no biometrics)."""
        state, reason = self._state
        if state == "running" and self.supervisor.error is not None:
            state, reason = "faulted", self.supervisor.error.message[:200]
        runner = self.runner
        last = runner.last_frame_mono if runner else None
        counters = runner.counters() if runner else {}
        deployment = self.deployment.status() if self.deployment else None
        return {"unit": self.cfg.unit.id, "state": state, "reason": reason,
                "last_fault": self.supervisor.last_fault(),
                "backend": self.engine.backend if self.engine else None,
                "model_id": self.engine.model_id if self.engine else None,
                "capture": self.cfg.capture.backend,
                "backends": self.resolution.status() if self.resolution else None,
                "frames": int(counters.get("frames", 0)),
                "frames_per_s": round(runner.frames_per_s(), 2) if runner else 0.0,
                "last_frame_age_s": round(time.monotonic() - last, 3) if last else None,
                # the search plan's figures, with its coverage guarantee (plan_staleness_ms, _max_ms)
                "search": self.engine.search_counters() if self.engine else {},
                "deployment": deployment,
                "watchlist_entries": self._watchlist_size(deployment),
                "sinks": dict(self.sinks.counters) if self.sinks else {},
                "audit": self.audit.status() if self.audit else None,
                "mqtt": self.publisher.stats() if self.publisher else None}

    def _watchlist_size(self, deployment: dict | None) -> int:
        if self.deployment is not None:  # from the record: no side effect on the matching path
            return int(deployment["deployment"]["entry_count"]) if deployment.get("active") else 0
        watchlist = self.watchlist()
        return len(watchlist) if watchlist is not None else 0

    def heartbeat_fields(self) -> dict:
        """The status fields the MQTT heartbeat carries to the console (docs/mqtt.md)."""
        status = self.status()
        fields = {"state": status["state"], "reason": status["reason"],
                  "frames_per_s": status["frames_per_s"], "watchlist_entries": status["watchlist_entries"]}
        deployment = status["deployment"] or {}
        if deployment.get("active"):
            fields["deployment_id"] = deployment["deployment"]["deployment_id"]
            fields["seconds_left"] = max(0.0, float(deployment["seconds_left"]))
            chosen = deployment.get("threshold") or {}
            if "threshold" in chosen:  # the list-size rule's choice and what it costs (G7)
                fields["threshold"] = chosen["threshold"]
                fields["expected_fpir"] = chosen["expected_fpir"]
        return fields

    # -- closing -------------------------------------------------------------------------------
    def _close_audit(self) -> None:
        try:
            self.audit.close()
        except AuditError as exc:
            log.warning("could not sign the final audit head: %s", exc.message)

    def close(self) -> None:
        """Close every part, last opened first."""
        self._stack.close()

    def __enter__(self) -> "Unit":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NoSource:
    """Stands in when the configured source could not be opened (the fault is recorded)."""

    live = False

    def __enter__(self) -> "_NoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def frames(self):
        """No frames."""
        return iter(())

    def stop(self) -> None:
        """Nothing to stop."""


def run_unit(cfg: Config, sinks: dict[str, Callable] | None = None, **parts) -> RunResult:
    """Open the unit, register ``sinks`` by name, run it, close it; return the result."""
    with Unit.open(cfg, **parts) as unit:
        for name, sink in (sinks or {}).items():
            unit.sinks.register(name, sink)
        return unit.run()
