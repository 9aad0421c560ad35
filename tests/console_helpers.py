"""Test helpers for the console: a running console (uvicorn over HTTPS in a thread) beside a real
van broker, a unit that publishes genuine signed alerts and audits adjudications, and a headless
Chromium from the Debian package driven by Playwright (never a downloaded browser)."""
from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.audit.log import AuditLog
from appliance.audit.report import entries_from_db
from appliance.audit.sink import adjudication_payload, refusal_payload
from appliance.console.config import ConsoleConfig
from appliance.console.keys import describe
from appliance.console.server import uvicorn_config
from appliance.console.service import Console
from appliance.keyid import public_string
from appliance.mqtt import AlertPublisher

try:
    from tests import mqtt_helpers as mh
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
UNIT = "van-dev-01"
PINS = {"PC-4411": "246810", "PS-0912": "135791", "PC-7001": "112233"}
VIEWPORT = {"width": 1280, "height": 800}
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def require_chromium() -> None:
    """Skip without the Debian chromium package (fail in CI, where .ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install chromium and chromium-driver")
        pytest.skip("chromium absent: apt-get install -y chromium chromium-driver")


def spki_pin(cert_path: Path) -> str:
    """Base64 SHA-256 of a certificate's public key: Chromium trusts exactly this key, nothing else."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def launch_browser(playwright, certs: Path):
    """Headless Chromium from /usr/bin/chromium, a fresh profile, trusting the console's HTTPS key."""
    require_chromium()
    pin = spki_pin(certs / "console-01-https.crt")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_FLAGS + [f"--ignore-certificate-errors-spki-list={pin}"])


class RunningConsole:
    """`appliance console` in this process: uvicorn over HTTPS on a free port, in a thread."""

    def __init__(self, certs: Path, broker, state: Path, unit_keys: dict, two_officer: bool = False,
                 wait_broker: bool = True, **console) -> None:
        import uvicorn  # noqa: PLC0415

        self.port = mh.free_port()
        self.cfg = ConsoleConfig.model_validate({
            "console": {"id": "console-01", "state_dir": str(state), "listen_host": "127.0.0.1",
                        "listen_port": self.port, "tls_cert": str(certs / "console-01-https.crt"),
                        "tls_key": str(certs / "console-01-https.key"), "two_officer": two_officer,
                        "heartbeat_stale_s": 5.0, **console},
            "mqtt": {"port": broker.lan_port, "ca_file": str(certs / "ca.crt"),
                     "cert_file": str(certs / "console-01.crt"), "key_file": str(certs / "console-01.key")},
            "units": [{"id": unit, "public_key": public_string(key)} for unit, key in unit_keys.items()]})
        self.console = Console.build(self.cfg)
        for officer, pin in PINS.items():
            if officer not in {o["officer_id"] for o in self.console.officers.list()}:
                self.console.officers.add(officer, pin)
        self.server = uvicorn.Server(uvicorn_config(self.console))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "console did not start"
        assert not wait_broker or self.console.link.connected.wait(10), "console did not reach the broker"
        self.url = f"https://127.0.0.1:{self.port}"

    @property
    def public_key(self) -> str:
        return describe(self.console.key)["console_key"]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Unit:
    """A unit on the test broker: genuine signed alerts (AlertPublisher) and a real audit log."""

    def __init__(self, certs: Path, broker, root: Path, keys, console_keys: list[str]) -> None:
        self.keys = keys
        self.db = root / "audit.db"
        self.log = AuditLog.open(self.db, self.keys.signing_key(), UNIT, head_every_n=100, head_every_s=3600)
        cfg = mh.unit_config(certs, broker.unit_port, UNIT, console_keys=console_keys, heartbeat_interval_s=1.0)
        self.publisher = AlertPublisher.open(
            cfg, self.keys, root / "outbox.db",
            on_adjudication=lambda adj: self.log.append("adjudication", adjudication_payload(adj)),
            on_adjudication_rejected=lambda v: self.log.append("adjudication_refused", refusal_payload(v)))

    def alert(self, **overrides) -> str:
        return self.publisher.submit(mh.make_alert(**overrides))

    def entries(self, kind: str) -> list[dict]:
        entries, _ = entries_from_db(self.db)
        return [e["payload"] for e in entries if e["type"] == kind]

    def close(self) -> None:
        self.publisher.close()
        self.log.close()


def sign_in(page, url: str, officer: str, pin: str | None = None) -> None:
    """Sign in through the page's own form."""
    page.goto(url + "/")
    page.fill("#officer_id", officer)
    page.fill("#pin", pin if pin is not None else PINS[officer])
    page.click("#signin-button")


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def screenshot(page, name: str) -> None:
    """A 1280x800 PNG for review in docs/images/ (written by the test run)."""
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOC_IMAGES / name))



LFW_PERSON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw-dev" / "George_W_Bush"


def faces_for_screens() -> tuple[bytes, bytes]:
    """Two photos of one person (LFW) for the review screenshots; noise JPEGs without the dataset."""
    import cv2  # noqa: PLC0415

    photos = sorted(LFW_PERSON.glob("*.jpg"))[:2] if LFW_PERSON.is_dir() else []
    if len(photos) < 2:
        return mh.jpeg(64), mh.jpeg(96)
    out = []
    for path, size in zip(photos, (160, 200)):
        img = cv2.imread(str(path))
        h, w = img.shape[:2]
        crop = img[h // 5: h * 4 // 5, w // 5: w * 4 // 5]
        out.append(cv2.imencode(".jpg", cv2.resize(crop, (size, size)), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out[0], out[1]
