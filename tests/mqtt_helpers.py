"""Test helpers for the MQTT tests: the van broker harness, unit config, alerts, fixtures.

The broker harness itself is library code (appliance/mqtt/vanbroker.py) shared with the
benchmark; here it is wrapped in pytest fixtures, skipping (failing in CI) without mosquitto.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from lfr_tools.broker import (REPO, TabletClient, VanBroker, free_port, make_certs,  # noqa: F401
                                      mosquitto_binary, tls_client)

Subscriber = TabletClient


def require_mosquitto() -> None:
    """Skip the test when mosquitto is absent; fail instead in CI, where .ci/run installs it."""
    if mosquitto_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed: .ci/run must install it (apt-get install mosquitto)")
        pytest.skip("mosquitto absent: apt-get install -y mosquitto")


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
spec = json.loads(sys.stdin.read())
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
    proc = subprocess.run([sys.executable, "-c", UNIT_CHILD], input=json.dumps(spec), capture_output=True,
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
    require_mosquitto()
    broker = VanBroker(tmp_path / "broker", van_certs)
    broker.start()
    yield broker
    broker.stop()
