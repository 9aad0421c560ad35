"""Test helpers for the MQTT tests: a real mosquitto with the project's own config.

``VanBroker`` renders deploy/mosquitto/mosquitto.conf for a temp dir (paths moved there,
the two listeners moved to free loopback ports; every other directive unchanged), uses the
project's ACL file and certificates made by deploy/make-van-certs.sh, and starts, kills and
restarts `mosquitto -c <conf>` processes. ``Subscriber`` is a tablet-like TLS client.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
ACL = REPO / "deploy" / "mosquitto" / "acl"
CERT_SCRIPT = REPO / "deploy" / "make-van-certs.sh"


def mosquitto_binary() -> str:
    """Path of the mosquitto broker; skip (fail in CI) when it is not installed."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.access(p, os.X_OK)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: .ci/run must install it (apt-get install mosquitto)")
        pytest.skip("mosquitto absent: apt-get install -y mosquitto")
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certs(out: Path) -> Path:
    """Run the project's certificate script into ``out``; return it."""
    subprocess.run(["bash", str(CERT_SCRIPT), str(out)], check=True, capture_output=True)
    return out


def render_conf(text: str, root: Path, unit_port: int, lan_port: int) -> str:
    """The project's broker config with paths under ``root`` and listeners on loopback test ports."""
    swaps = {"listener 8884 127.0.0.1": f"listener {unit_port} 127.0.0.1",
             "listener 8883\n": f"listener {lan_port} 127.0.0.1\n",
             "/etc/mosquitto/lfr/": f"{root}/", "/var/lib/mosquitto/": f"{root}/data/",
             "log_dest stderr": f"log_dest file {root}/mosquitto.log"}
    for old, new in swaps.items():
        assert old in text, f"deploy/mosquitto/mosquitto.conf lost '{old.strip()}'"
        text = text.replace(old, new)
    return text + "user root\n"  # tests run as root; the packaged service drops to 'mosquitto'


class VanBroker:
    """A mosquitto process with the project's config, ACL and freshly made certificates."""

    def __init__(self, root: Path, certs: Path) -> None:
        self.root, self.certs = root, certs
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        for name in ("ca.crt", "broker.crt", "broker.key"):
            shutil.copy(certs / name, root / name)
        shutil.copy(ACL, root / "acl")
        self.unit_port, self.lan_port = free_port(), free_port()
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(render_conf(CONF.read_text(), root, self.unit_port, self.lan_port))
        self.proc: subprocess.Popen | None = None
        self.binary = mosquitto_binary()

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until both listeners accept connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        for port in (self.unit_port, self.lan_port):
            while not _accepts(port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.log()[-2000:]}")
                time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Kill the broker with ``sig`` and wait for it to exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM, down_s: float = 0.0) -> None:
        """Kill, stay down ``down_s`` seconds, start again."""
        self.stop(sig)
        time.sleep(down_s)
        self.start()

    def log(self) -> str:
        """The broker's log file."""
        path = self.root / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tls_client(certs: Path, identity: str | None, client_id: str) -> mqtt.Client:
    """A paho v2 / MQTT v5 client trusting the van CA, with ``identity``'s certificate (or none)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    kwargs = {} if identity is None else {"certfile": str(certs / f"{identity}.crt"),
                                          "keyfile": str(certs / f"{identity}.key")}
    client.tls_set(ca_certs=str(certs / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT, **kwargs)
    return client


class Subscriber:
    """A tablet: persistent session, QoS 1 subscriptions, collects (topic, payload) as they arrive."""

    def __init__(self, certs: Path, port: int, topics: list[str], identity: str = "tablet-01",
                 client_id: str = "tablet-test") -> None:
        from paho.mqtt.properties import Properties  # noqa: PLC0415
        from paho.mqtt.packettypes import PacketTypes  # noqa: PLC0415

        self.messages: list[tuple[str, bytes, float]] = []
        self.granted: list = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = tls_client(certs, identity, client_id)
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.granted.extend(codes)
        self.topics = topics
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            for t in self.topics:
                client.subscribe(t, qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), time.time()))

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Block until connected and subscribed."""
        assert self.connected.wait(timeout), "subscriber did not connect"
        deadline = time.monotonic() + timeout
        while len(self.granted) < len(self.topics) and time.monotonic() < deadline:
            time.sleep(0.01)

    def payloads(self, kind: str) -> list[dict]:
        """Decoded JSON payloads received on topics ending in /<kind>."""
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/" + kind)]

    def wait_for(self, predicate, timeout: float) -> bool:
        """Poll until predicate(self) is true; return whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


# --- unit side: config, keys, alerts ---

def unit_config(certs: Path, port: int, unit: str = "van-dev-01", cert_as: str | None = None, **mqtt_overrides):
    """A Config for ``unit`` talking to the test broker, with the certificate of ``cert_as`` (default: unit)."""
    from appliance.config import Config, MqttConfig, UnitConfig  # noqa: PLC0415

    ident = cert_as or unit
    settings = dict(port=port, ca_file=str(certs / "ca.crt"), cert_file=str(certs / f"{ident}.crt"),
                    key_file=str(certs / f"{ident}.key"), reconnect_min_s=0.05, reconnect_max_s=0.5,
                    heartbeat_interval_s=0.5, client_id=f"lfr-{unit}-{os.getpid()}")
    settings.update(mqtt_overrides)
    return Config(unit=UnitConfig(id=unit), mqtt=MqttConfig(**settings))


def new_keystore(root: Path):
    """A file key store with fresh unit keys."""
    from appliance.keystore.file import FileKeyStore  # noqa: PLC0415

    store = FileKeyStore(root)
    store.init()
    return store


_JPEG: dict[int, bytes] = {}


def jpeg(size: int = 64) -> bytes:
    """A small real JPEG (noise), standing in for a face crop."""
    if size not in _JPEG:
        import cv2  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        img = np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8)
        _JPEG[size] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return _JPEG[size]


def make_alert(track_id: int = 1, **overrides) -> dict:
    """An alert dict as the pipeline produces it (face crop and reference thumbnail as JPEG bytes)."""
    alert = dict(camera="cam0", deployment_id="dep-2026-11-28-a", subject_ref="WL-000123",
                 category="wanted: burglary", score=0.712, threshold=0.55,
                 model_id="mobilefacenet@d8ba40c0127f", track_id=track_id,
                 quality={"size_px": 84.0, "sharpness": 120.5, "brightness": 131.0, "yaw": 0.12},
                 face_jpeg=jpeg(64), reference_jpeg=jpeg(96))
    alert.update(overrides)
    return alert


UNIT_CHILD = """
import json, os, signal, sys, time
from appliance.config import Config
from appliance.keystore.file import FileKeyStore
from appliance.mqtt import AlertPublisher
spec = json.loads(sys.argv[1])
cfg = Config.model_validate(spec["config"])
pub = AlertPublisher.open(cfg, FileKeyStore(spec["keys"]), spec["db"])
if spec["wait_connected"]:
    deadline = time.monotonic() + 10
    while not pub.stats()["connected"] and time.monotonic() < deadline:
        time.sleep(0.02)
ids = [pub.submit(a) for a in spec["alerts"]]
print(json.dumps({"ids": ids, "stats": pub.stats()}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a unit crash: no close(), no DISCONNECT
"""


def run_unit_then_crash(cfg, keys: Path, db: Path, alerts: list[dict], wait_connected: bool) -> dict:
    """Run a unit process that submits ``alerts`` and then dies by SIGKILL; return what it printed."""
    import base64  # noqa: PLC0415
    import sys  # noqa: PLC0415

    wire = [{k: (base64.b64encode(v).decode() if isinstance(v, bytes) else v) for k, v in a.items()}
            for a in alerts]
    spec = {"config": cfg.model_dump(exclude={"source_path"}), "keys": str(keys), "db": str(db),
            "alerts": wire, "wait_connected": wait_connected}
    proc = subprocess.run([sys.executable, "-c", UNIT_CHILD, json.dumps(spec)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def van_certs(tmp_path_factory) -> Path:
    """The van CA and broker/unit/tablet/console certificates, made once per test session."""
    return make_certs(tmp_path_factory.mktemp("van-certs") / "certs")


@pytest.fixture
def van_broker(tmp_path, van_certs):
    """A running van broker with the project's config; stopped after the test."""
    broker = VanBroker(tmp_path / "broker", van_certs)
    broker.start()
    yield broker
    broker.stop()
