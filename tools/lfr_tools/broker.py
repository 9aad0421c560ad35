"""A van broker on loopback for tests, benchmarks and demos: the project's own config, for real.

``VanBroker`` renders deploy/mosquitto/mosquitto.conf for a temp dir (paths moved there,
the two listeners moved to free loopback ports; every other directive unchanged), uses the
project's ACL file and certificates made by deploy/make-van-certs.sh, and starts, kills and
restarts `mosquitto -c <conf>` processes. ``TabletClient`` is a tablet-like TLS subscriber.
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.errors import PublishError
from appliance.mqtt.transport import no_delay

from .paths import REPO_ROOT as REPO

CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
ACL = REPO / "deploy" / "mosquitto" / "acl"
CERT_SCRIPT = REPO / "deploy" / "make-van-certs.sh"


def mosquitto_binary() -> str | None:
    """Path of the mosquitto broker, or None when it is not installed."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.access(p, os.X_OK)), None)


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
        if old not in text:
            raise PublishError(f"deploy/mosquitto/mosquitto.conf lost '{old.strip()}'",
                               fix="restore the directive or update render_conf")
        text = text.replace(old, new)
    return text + ("user root\n" if os.geteuid() == 0 else "")  # the packaged service drops to 'mosquitto'


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
        binary = mosquitto_binary()
        if binary is None:
            raise PublishError("mosquitto is not installed", fix="apt-get install -y mosquitto")
        self.binary = binary

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until both listeners accept connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        for port in (self.unit_port, self.lan_port):
            while not _accepts(port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise PublishError(f"mosquitto did not start: {self.log()[-2000:]}",
                                       fix=f"run mosquitto -c {self.conf} by hand to see why")
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
    client.on_socket_open = no_delay
    kwargs = {} if identity is None else {"certfile": str(certs / f"{identity}.crt"),
                                          "keyfile": str(certs / f"{identity}.key")}
    client.tls_set(ca_certs=str(certs / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT, **kwargs)
    return client


class TabletClient:
    """A tablet: persistent session, QoS 1 subscriptions, collects (topic, payload) as they arrive."""

    def __init__(self, certs: Path, port: int, topics: list[str], identity: str = "tablet-01",
                 client_id: str = "tablet-test") -> None:
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
