"""MQTT benchmark: alert creation to tablet receipt on loopback, and none lost over broker restarts.

Runs a real mosquitto with the project's config (appliance.mqtt.vanbroker), a unit
publisher with its SQLite outbox, and a TLS tablet subscriber. Latency is measured
from just before ``submit`` (the pipeline hands the alert over) to the subscriber's
on_message, both on this machine's wall clock.
"""
from __future__ import annotations

import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from appliance.config import Config, MqttConfig, UnitConfig
from appliance.keystore.file import FileKeyStore
from appliance.mqtt import AlertPublisher
from lfr_tools.broker import TabletClient, VanBroker, make_certs

UNIT = "van-dev-01"
LATENCY_ALERTS = 400
LATENCY_RATE_HZ = 40.0
RESTARTS = 100
KILL9_RESTARTS = 100


def _alert(track_id: int) -> dict:
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    crop = np.random.default_rng(track_id).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return dict(camera="cam0", deployment_id="bench", subject_ref="WL-1", category="bench", score=0.7,
                threshold=0.55, model_id="mobilefacenet@bench", track_id=track_id,
                quality={"size_px": 90.0}, face_jpeg=jpeg, reference_jpeg=jpeg)


def _percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"n": 0}
    ordered = sorted(values_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 2), "p90_ms": round(pick(0.9), 2),
            "p99_ms": round(pick(0.99), 2), "max_ms": round(ordered[-1], 2)}


class _Rig:
    """Broker + unit + tablet in one temp dir."""

    def __init__(self, root: Path, certs: Path) -> None:
        self.broker = VanBroker(root / "broker", certs)
        self.broker.start()
        self.keys = FileKeyStore(root / "keys")
        self.keys.init()
        cfg = Config(unit=UnitConfig(id=UNIT), mqtt=MqttConfig(
            port=self.broker.unit_port, ca_file=str(certs / "ca.crt"), cert_file=str(certs / f"{UNIT}.crt"),
            key_file=str(certs / f"{UNIT}.key"), reconnect_min_s=0.05, reconnect_max_s=0.5))
        self.tablet = TabletClient(certs, self.broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id=f"bench-{root.name}")
        self.tablet.wait_connected()
        self.unit = AlertPublisher.open(cfg, self.keys, root / "appliance.db")
        self.submitted: dict[str, float] = {}

    def submit(self, alert: dict) -> None:
        t0 = time.time()
        self.submitted[self.unit.submit(alert)] = t0

    def first_receipts(self) -> dict[str, float]:
        first: dict[str, float] = {}
        with self.tablet._lock:
            for _topic, payload, t in self.tablet.messages:
                aid = payload[payload.index(b'"alert_id":"') + 12:][:36].decode()
                first.setdefault(aid, t)
        return first

    def settle(self, timeout: float) -> dict:
        self.unit.flush(timeout)
        self.tablet.wait_for(lambda s: set(self.first_receipts()) >= set(self.submitted), timeout)
        first = self.first_receipts()
        lost = set(self.submitted) - set(first)
        with self.tablet._lock:
            received = len(self.tablet.messages)
        latencies = [(first[a] - t0) * 1000 for a, t0 in self.submitted.items() if a in first]
        return {"alerts": len(self.submitted), "received_messages": received, "lost": len(lost),
                "duplicates": received - len(first), "latency": _percentiles(latencies),
                "unit": {k: v for k, v in self.unit.stats().items() if k != "adjudications"}}

    def close(self) -> None:
        self.unit.close(timeout=2)
        self.tablet.close()
        self.broker.stop()


def _produce(rig: _Rig, stop: threading.Event, period_s: float) -> None:
    track = 0
    while not stop.is_set():
        rig.submit(_alert(track % 50))
        track += 1
        stop.wait(period_s)


def bench_latency(root: Path, certs: Path) -> dict:
    """Alerts at a steady rate with the broker up: creation -> receipt percentiles."""
    rig = _Rig(root, certs)
    try:
        alerts = [_alert(i % 50) for i in range(LATENCY_ALERTS)]
        for alert in alerts:
            rig.submit(alert)
            time.sleep(1.0 / LATENCY_RATE_HZ)
        return {"rate_hz": LATENCY_RATE_HZ, **rig.settle(30)}
    finally:
        rig.close()


def bench_outage(root: Path, certs: Path, restarts: int, sig: int) -> dict:
    """Alerts at 50/s while the broker is killed with ``sig`` and restarted ``restarts`` times."""
    rig = _Rig(root, certs)
    if sig == signal.SIGKILL:
        time.sleep(6.0)  # let the broker's 5 s autosave write the tablet's session to disk once
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(rig, stop, 0.02))
    started = time.monotonic()
    producer.start()
    try:
        for cycle in range(restarts):
            time.sleep(0.3)
            rig.broker.restart(sig=sig, down_s=0.05 + 0.05 * (cycle % 4))
        time.sleep(0.3)
    finally:
        stop.set()
        producer.join()
    try:
        result = rig.settle(60)
    finally:
        rig.close()
    return {"restarts": restarts, "signal": signal.Signals(sig).name,
            "duration_s": round(time.monotonic() - started, 1), **result}


def run(out_dir: Path) -> dict:
    """Run the MQTT benchmarks; return JSON-serialisable results."""
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        root = Path(tmp)
        certs = make_certs(root / "certs")
        return {
            "latency_loopback": bench_latency(root / "latency", certs),
            "outage_sigterm": bench_outage(root / "outage", certs, RESTARTS, signal.SIGTERM),
            "outage_sigkill": bench_outage(root / "kill9", certs, KILL9_RESTARTS, signal.SIGKILL),
            "notes": "latency: wall clock from before submit() (outbox commit, fsync) to the TLS "
                     "subscriber's on_message, loopback, one 2-core machine. outage_sigkill shows "
                     "what a broker crash (not a clean stop) can cost: mosquitto acknowledges before "
                     "it persists (docs/mqtt.md).",
        }
