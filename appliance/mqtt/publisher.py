"""AlertPublisher: the unit's MQTT client (paho-mqtt 2.x, MQTT v5, TLS client certificate).

Ordering for every alert: the caller appends its audit entry, then ``submit`` commits
the signed alert to the SQLite outbox, then a pump thread hands it to paho with QoS 1.
The row is deleted only when the broker's PUBACK for that message id reports success.
MQTT v5 is used so that a broker refusal (e.g. an ACL denial, "not authorised") comes
back as a failure reason code instead of a silent drop; a refused alert stays in the
outbox and is retried. paho reconnects with exponential backoff and re-sends the
messages it holds with their original ids; everything else is re-read from the outbox,
including after a unit restart. Status is retained with a last will "offline".
"""
from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt

from ..config import Config, MqttConfig, resolve
from ..errors import ApplianceError, PublishError
from .adjudication import AdjudicationIntake, Verdict
from .outbox import Outbox, OutboxRow, add_statements
from .payload import Signer, alert_body, encode
from .topics import topic

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.db"
TICK_S = 0.5
EXPIRE_EVERY_S = 1.0
# The broker writes its state every autosave_interval (deploy/mosquitto/mosquitto.conf); what it
# acknowledged since may die with it. A hung broker is noticed within 1.5 keepalives.
BROKER_AUTOSAVE_S = 5.0
PUMP_BACKOFF_S, PUMP_BACKOFF_MAX_S = 0.5, 30.0
PUMP_CRASH_LIMIT, PUMP_CRASH_WINDOW_S = 5, 120.0


def _log_expired(row: OutboxRow) -> None:
    log.error("alert %s expired undelivered after %d attempts", row.alert_id, row.attempts)


def _tls_files(cfg: MqttConfig) -> tuple[str, str, str]:
    files = tuple(str(resolve(p)) for p in (cfg.ca_file, cfg.cert_file, cfg.key_file))
    for path in files:
        if not Path(path).is_file():
            raise PublishError(f"MQTT TLS file missing: {path}",
                               fix="create the van certificates with deploy/make-van-certs.sh and set "
                                   "[mqtt] ca_file, cert_file, key_file")
    return files  # type: ignore[return-value]


def no_delay(client, userdata, sock) -> None:
    """Disable Nagle on the client socket: a 60 kB alert otherwise waits ~40 ms for a delayed ACK."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_client(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client (callback API v2, MQTT v5) with mutual TLS, backoff and flow control set."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_socket_open = no_delay
    ca, cert, key = _tls_files(cfg)
    try:
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise PublishError(f"cannot load the MQTT TLS files: {exc}",
                           fix="regenerate them with deploy/make-van-certs.sh") from None
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
    client.max_inflight_messages_set(cfg.max_inflight)
    return client


class AlertPublisher:
    """Publishes alerts from the durable outbox; takes in adjudications; reports status."""

    def __init__(self, unit: str, cfg: MqttConfig, signer: Signer, outbox: Outbox, *,
                 on_expired: Callable[[OutboxRow], None] | None = None,
                 on_adjudication: Callable[[dict], None] | None = None,
                 on_adjudication_rejected: Callable[[Verdict], None] | None = None,
                 on_pump_fault: Callable[[BaseException, bool], None] | None = None,
                 heartbeat_fields: Callable[[], dict] | None = None) -> None:
        self.unit, self.cfg, self.signer, self.outbox = unit, cfg, signer, outbox
        self._on_expired = on_expired or _log_expired
        self._on_pump_fault = on_pump_fault or (lambda exc, fatal: None)
        self._heartbeat_fields = heartbeat_fields or dict
        self._crashes: list[float] = []
        self.intake = AdjudicationIntake(unit, lambda aid: outbox.state(aid) is not None,
                                         on_adjudication or (lambda adj: None),
                                         on_adjudication_rejected, cfg.adjudication_max_bytes)
        self.counters: Counter[str] = Counter()
        self._acks: queue.SimpleQueue = queue.SimpleQueue()
        self._inflight: dict[int, str] = {}
        self._wake, self._stop, self._connected = threading.Event(), threading.Event(), threading.Event()
        self._started = time.monotonic()
        self._next_beat = self._next_expire = 0.0
        self._seq = 0
        self._state = ("online", "")
        self._resend_due = False
        self.resend_window_s = BROKER_AUTOSAVE_S + 1.5 * cfg.keepalive_s + 2.0
        self.client = make_client(cfg, cfg.client_id or f"lfr-{unit}")
        self.client.will_set(topic(unit, "status"), self._status_bytes("offline", "connection lost"),
                             qos=1, retain=True)
        for name in ("on_connect", "on_disconnect", "on_publish", "on_message"):
            setattr(self.client, name, getattr(self, f"_{name}"))
        self._pump = threading.Thread(target=self._run, name=f"mqtt-outbox-{unit}", daemon=True)

    @classmethod
    def open(cls, cfg: Config, keystore, db_path: str | Path | None = None, **callbacks) -> "AlertPublisher":
        """Open the outbox in ``db_path``, connect to the broker in the background, start publishing.

        ``db_path`` defaults to <[unit] data_dir>/outbox.db. ``keystore`` provides the unit's
        Ed25519 signing key. Keyword callbacks: on_expired(row), on_adjudication(dict),
        on_adjudication_rejected(Verdict), on_pump_fault(exc, fatal), heartbeat_fields().
        The broker need not be up.
        """
        db_path = db_path or resolve(cfg.unit.data_dir) / OUTBOX_FILE
        signer = Signer(cfg.unit.id, keystore.signing_key())
        publisher = cls(cfg.unit.id, cfg.mqtt, signer, Outbox(db_path), **callbacks)
        publisher.start()
        return publisher

    def start(self) -> None:
        """Connect asynchronously (retrying with backoff) and start the outbox pump."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._pump.start()

    def outbox_statements(self, alert) -> tuple[str, list[tuple[str, tuple]]]:
        """Sign ``alert`` and return its id and the SQL that queues it in the outbox.

        The unit runs the statements in the alert's audit transaction (``AuditLog.append``
        with ``also=``, the outbox living in the audit database), then calls :meth:`wake`.
        """
        body = alert_body(alert, self.unit)
        data = encode(self.signer.sign("alert", body))
        return body["alert_id"], add_statements(body["alert_id"], topic(self.unit, "alert"), data, time.time())

    def wake(self) -> None:
        """Tell the pump that the outbox has new rows."""
        self._wake.set()

    def submit(self, alert) -> str:
        """Sign the alert and commit it to the outbox (call after its audit entry); return its id.

        ``alert`` is the pipeline's Alert (so this method is a runner alert sink) or a dict.
        Raises InputError for a malformed alert and PublishError if the outbox cannot be written.
        Re-submitting an alert id already issued changes nothing.
        """
        body = alert_body(alert, self.unit)
        data = encode(self.signer.sign("alert", body))
        if not self.outbox.add(body["alert_id"], topic(self.unit, "alert"), data, time.time()):
            log.warning("alert %s was already issued; not queued again", body["alert_id"])
        self._wake.set()
        return body["alert_id"]

    def set_status(self, state: str, reason: str = "") -> None:
        """Publish the retained status (online / degraded) with a reason, e.g. why matching stopped."""
        self._state = (state, reason)
        if self._connected.is_set():
            self.client.publish(topic(self.unit, "status"), self._status_bytes(state, reason), qos=1, retain=True)

    def stats(self) -> dict:
        """Counters, outbox depth and connection state, for status output and tests."""
        return {"connected": self._connected.is_set(), "inflight": len(self._inflight),
                "outbox_pending": self.outbox.pending_count(), **self.counters,
                "adjudications": dict(self.intake.counters)}

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty (every alert acknowledged); True if it emptied in time."""
        deadline = time.monotonic() + timeout
        while self.outbox.pending_count() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.outbox.pending_count() == 0

    def close(self, timeout: float = 5.0) -> None:
        """Let in-flight alerts settle, publish status offline, disconnect; pending rows stay durable."""
        deadline = time.monotonic() + timeout
        while self._inflight and self._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._pump.is_alive():
            self._pump.join(timeout)
        if self._connected.is_set():
            info = self.client.publish(topic(self.unit, "status"),
                                       self._status_bytes("offline", "stopped"), qos=1, retain=True)
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()

    def __enter__(self) -> "AlertPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- paho callbacks (network thread): keep them short, never raise ---

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._resend_due = True
        self._connected.set()
        self.counters["connects"] += 1
        client.subscribe(topic(self.unit, "adjudication"), qos=1)
        client.publish(topic(self.unit, "status"), self._status_bytes(*self._state), qos=1, retain=True)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self.counters["disconnects"] += 1
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put((mid, reason_code.is_failure, str(reason_code)))
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        self.intake.handle(message.payload)

    # --- the outbox pump (own thread): the only place alerts are handed to paho ---

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._connected.is_set():
                    self._resend_recent()
                    self._hand_over()
                    self._heartbeat()
                self._expire()
            except ApplianceError as exc:  # the outbox cannot be written: say so, keep trying
                log.error("outbox pump: %s", exc)
                self.counters["pump_errors"] += 1
                self._stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - supervision: restart with backoff, escalate if it persists
                self._stop.wait(self._pump_crashed(exc))
        self._settle_acks()

    def _pump_crashed(self, exc: BaseException) -> float:
        """Report a pump crash (audited by the unit); return the backoff before the restart.

        Alerts stay durable in the outbox meanwhile, so a restart is safe; PUMP_CRASH_LIMIT
        crashes within PUMP_CRASH_WINDOW_S make the fault fatal (the unit stops, exits non-zero).
        """
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < PUMP_CRASH_WINDOW_S] + [now]
        self.counters["pump_crashes"] += 1
        fatal = len(self._crashes) >= PUMP_CRASH_LIMIT
        log.error("outbox pump crashed (%d in %.0f s)%s", len(self._crashes), PUMP_CRASH_WINDOW_S,
                  "; giving up" if fatal else "; restarting", exc_info=exc)
        self._on_pump_fault(exc, fatal)
        return min(PUMP_BACKOFF_MAX_S, PUMP_BACKOFF_S * 2 ** (len(self._crashes) - 1))

    def _settle_acks(self) -> None:
        done: list[str] = []
        while True:
            try:
                mid, failed, reason = self._acks.get_nowait()
            except queue.Empty:
                break
            alert_id = self._inflight.pop(mid, None)
            if alert_id is None:
                continue  # a status or heartbeat message
            if failed:
                log.error("broker refused alert %s: %s; kept in the outbox", alert_id, reason)
                self.counters["refused"] += 1
                self.outbox.refused(alert_id, reason, time.time() + self.cfg.refused_retry_s)
            else:
                done.append(alert_id)
        self.counters["acked"] += self.outbox.delivered(done, time.time())

    def _hand_over(self) -> None:
        room = self.cfg.max_inflight - len(self._inflight)
        if room <= 0:
            return
        handed: list[str] = []
        for row in self.outbox.due(time.time(), room, set(self._inflight.values())):
            info = self.client.publish(row.topic, row.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("paho did not take alert %s: %s", row.alert_id, mqtt.error_string(info.rc))
                break
            self._inflight[info.mid] = row.alert_id  # NO_CONN: paho holds it and sends on reconnect
            handed.append(row.alert_id)
        self.outbox.attempted(handed)
        self.counters["sent"] += len(handed)

    def _resend_recent(self) -> None:
        """After every (re)connect, including the first after a unit start: alerts the broker
        acknowledged within the resend window before the link was lost are sent again."""
        if self._resend_due:
            self._resend_due = False
            self.counters["resent_after_reconnect"] += self.outbox.resend_recent(self.resend_window_s)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + self.cfg.heartbeat_interval_s
        body = {"seq": self._seq, "uptime_s": round(now - self._started, 3),
                "outbox_pending": self.outbox.pending_count(), **self._heartbeat_fields()}
        self._seq += 1
        self.client.publish(topic(self.unit, "heartbeat"), encode(self.signer.sign("heartbeat", body)), qos=0)

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_expire:
            return
        self._next_expire = now + EXPIRE_EVERY_S
        expired = self.outbox.expire(time.time(), self.cfg.outbox_max_age_s,
                                     set(self._inflight.values()), self._on_expired)
        self.counters["expired"] += len(expired)
        if self._connected.is_set() and not self._resend_due:  # never purge what a reconnect may resend
            self.outbox.purge_acked(time.time() - self.resend_window_s)

    def _status_bytes(self, state: str, reason: str) -> bytes:
        return encode(self.signer.sign("status", {"state": state, "reason": reason}))
