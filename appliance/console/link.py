"""The console's MQTT link to the van broker: verified payloads in, signed adjudications out.

Every alert, status, heartbeat and record is checked against its JSON Schema and the pinned
public key of its unit before anything is shown; one that fails is kept apart as
"unverified: do not act" (text only, never its images). Alerts are committed to the store
inside the message callback, so the broker's acknowledgement (sent when it returns) comes
after the commit; with a persistent session (clean start off, session expiry) alerts sent
while the console is down wait at the broker. Adjudications are published from the store's
outgoing table (QoS 1) and marked sent on the broker's PUBACK, re-sent after a reconnect.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import ssl
import threading
import time
from collections import deque
from typing import Callable

import paho.mqtt.client as mqtt

from ..errors import ApplianceError, InputError
from ..keyid import parse_public
from ..mqtt.payload import verify
from ..mqtt.transport import no_delay, session_properties
from ..mqtt.topics import adjudication_topic, topic
from .config import ConsoleConfig
from .store import ConsoleStore

log = logging.getLogger(__name__)
KINDS = ("alert", "status", "heartbeat", "record")
ENVELOPE = ("schema", "unit", "key_id", "sig")
# what a heartbeat may carry from the unit's status (docs/mqtt.md); optional ones vanish when not sent
HEALTH = ("frames_per_s", "deployment_id", "watchlist_entries", "outbox_pending", "uptime_s")
OPTIONAL_HEALTH = ("frames_per_s", "deployment_id", "watchlist_entries", "deployment_ends", "pipeline",
                   "pipeline_reason")
Notify = Callable[[dict], None]


class VanLink:
    """Subscribes to the configured units' topics and publishes the console's adjudications."""

    def __init__(self, cfg: ConsoleConfig, store: ConsoleStore, notify: Notify) -> None:
        self.cfg, self.store, self.notify = cfg, store, notify
        self.keys = {u.id: parse_public(u.public_key, f"unit {u.id} public key") for u in cfg.units}
        self.units: dict[str, dict] = {u: {"unit": u, "state": "unknown", "reason": "no status yet"} for u in self.keys}
        self.flagged: deque = deque(maxlen=50)
        self._inflight: dict[int, str] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.store_failure = ""  # why the last message could not be committed (the link then restarts)
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        # manual acknowledgement: an alert is acknowledged only once it is committed to the store
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.console.id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        client.on_socket_open = no_delay
        client.tls_set(ca_certs=m.ca_file, certfile=m.cert_file, keyfile=m.key_file, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(0.1, 5)  # type: ignore[arg-type]
        for name in ("on_connect", "on_disconnect", "on_message", "on_publish"):
            setattr(client, name, getattr(self, f"_{name}"))
        return client

    def start(self) -> None:
        """Connect in the background (retrying) with a persistent session."""
        m = self.cfg.mqtt
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=False,
                                  properties=session_properties(m.session_expiry_s))
        self.client.loop_start()

    def recover(self) -> bool:
        """After a store failure: reconnect, so the broker re-delivers what was not acknowledged."""
        if not self.store_failure or self.connected.is_set():
            return False
        log.warning("reconnecting to have unacknowledged messages re-delivered (%s)", self.store_failure)
        self.store_failure = ""
        self.client.loop_stop()
        self.start()
        return True

    def close(self) -> None:
        """Disconnect; unsent adjudications stay in the store for the next start."""
        self.client.disconnect()
        self.client.loop_stop()

    def publish_pending(self) -> int:
        """Publish every adjudication the broker has not acknowledged yet; return how many were handed over."""
        handed = 0
        with self._lock:
            busy = set(self._inflight.values())
        for adjudication_id, unit, payload in self.store.unsent():
            if adjudication_id in busy or not self.connected.is_set():
                continue
            info = self.client.publish(adjudication_topic(unit, self.cfg.console.id), payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                with self._lock:
                    self._inflight[info.mid] = adjudication_id
                handed += 1
        return handed

    def unit_views(self) -> list[dict]:
        """Status of every configured unit for the status bar (online / offline / stale ...)."""
        now = time.time()
        views = []
        with self._lock:
            for view in self.units.values():
                view = dict(view)
                beat = view.get("heartbeat_at")
                view["stale"] = view["state"] == "online" and (beat is None or
                                                              now - beat > self.cfg.console.heartbeat_stale_s)
                views.append(view)
        return views

    # --- paho callbacks (network thread): short, never raise ---

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the console: %s", reason_code)
            return
        for unit in self.keys:
            for kind in KINDS:
                client.subscribe(topic(unit, kind), qos=1)
        self.connected.set()
        with self._lock:
            self._inflight.clear()  # re-send whatever was not acknowledged; the unit de-duplicates
        self.publish_pending()
        self.notify({"kind": "link", "connected": True})

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.notify({"kind": "link", "connected": False})

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            adjudication_id = self._inflight.pop(mid, None)
        if adjudication_id is None:
            return
        if reason_code.is_failure:
            log.error("broker refused adjudication %s: %s", adjudication_id, reason_code)
            return
        self.store.mark_sent(adjudication_id)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._handle(message)
        except (sqlite3.Error, OSError, ApplianceError) as exc:
            # not acknowledged: drop the link; after reconnecting the broker sends it again
            self.store_failure = str(exc)[:200]
            log.error("could not store a message from %s: %s; it stays at the broker", message.topic, exc)
            client.disconnect()
            return
        client.ack(message.mid, message.qos)

    def _handle(self, message) -> None:
        parts = message.topic.split("/")
        if len(parts) != 4 or parts[2] not in self.keys or parts[3] not in KINDS or not message.payload:
            return  # not ours, or a cleared retained message
        unit, kind = parts[2], parts[3]
        try:
            payload = verify(kind, bytes(message.payload), self.keys[unit])
            if payload["unit"] != unit:
                raise InputError(f"payload names unit {payload['unit']!r} on {unit}'s topic")
        except (InputError, ValueError, RecursionError) as exc:
            self._flag(unit, kind, bytes(message.payload), str(exc))
            return
        getattr(self, f"_take_{kind}")(unit, payload)

    # --- verified payloads ---

    def _take_alert(self, unit: str, alert: dict) -> None:
        added = self.store.add_alert(unit, alert)  # committed before paho acknowledges the message
        if added:
            event, card = added
            self.notify({"kind": event, "card": card})

    def _take_status(self, unit: str, status: dict) -> None:
        with self._lock:
            self.units[unit].update(state=status["state"], reason=status["reason"], status_time=status["time"])
        self.notify({"kind": "units", "units": self.unit_views()})

    def _take_heartbeat(self, unit: str, beat: dict) -> None:
        with self._lock:
            view = self.units[unit]
            for name in OPTIONAL_HEALTH:
                view.pop(name, None)  # a field the unit no longer sends (deployment over) is gone
            view.update({k: beat[k] for k in HEALTH if k in beat}, heartbeat_at=time.time())
            if "seconds_left" in beat:  # as an end time, so the page can count down between beats
                view["deployment_ends"] = _epoch(beat["time"]) + beat["seconds_left"]
            if "state" in beat:
                view.update(pipeline=beat["state"], pipeline_reason=beat.get("reason", ""))
        self.notify({"kind": "units", "units": self.unit_views()})

    def _take_record(self, unit: str, record: dict) -> None:
        body = {k: v for k, v in record.items() if k not in ENVELOPE}
        forgotten = self.store.add_record(unit, {**body, "unit": unit, "signed_by": record["key_id"]})
        log.info("deployment %s of %s ended: images of %d alerts forgotten", body["deployment_id"], unit, forgotten)
        self.notify({"kind": "record", "unit": unit, "deployment_id": body["deployment_id"]})

    def _flag(self, unit: str, kind: str, data: bytes, why: str) -> None:
        """Keep a failed payload's text fields apart, never as genuine and never its images."""
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
        parsed = parsed if isinstance(parsed, dict) else {}
        shown = {k: str(parsed.get(k, ""))[:128] for k in ("subject_ref", "category", "alert_id", "time")}
        entry = {"unit": unit, "kind": kind, "problem": why[:200], "received": time.time(), **shown}
        with self._lock:
            self.flagged.appendleft(entry)
        log.warning("unverified %s on %s: %s", kind, unit, why)
        self.notify({"kind": "flagged", "flag": entry})


def _epoch(rfc3339: str) -> float:
    """Seconds since the epoch of a payload time (UTC, Z suffix; the schema guarantees the form)."""
    return dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
