"""Test helpers for the console: a running console (uvicorn over HTTPS in a thread) beside a real
van broker, a unit that publishes genuine signed alerts and audits adjudications, and a headless
Chromium from the Debian package driven by Playwright (never a downloaded browser)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.audit.log import AuditLog
from appliance.audit.report import entries_from_db
from appliance.audit.sink import adjudication_callbacks
from appliance.mqtt import AlertPublisher
from lfr_tools.consolerig import CHROMIUM, VIEWPORT, ConsoleThread, console_config, launch_chromium  # noqa: F401 (VIEWPORT: for the tests)

try:
    from tests import mqtt_helpers as mh
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import mqtt_helpers as mh

UNIT = "van-dev-01"
PINS = {"PC-4411": "246810", "PS-0912": "135791", "PC-7001": "112233"}
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def require_chromium() -> None:
    """Skip without the Debian chromium package (fail in CI, where .ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install chromium and chromium-driver")
        pytest.skip("chromium absent: apt-get install -y chromium chromium-driver")


def launch_browser(playwright, certs: Path):
    """Headless Chromium from /usr/bin/chromium, a fresh profile, trusting the console's HTTPS key."""
    require_chromium()
    return launch_chromium(playwright, certs / "console-01-https.crt")


class RunningConsole(ConsoleThread):
    """`appliance console` in this process beside the test broker, with the test officers."""

    def __init__(self, certs: Path, broker, state: Path, unit_keys: dict, two_officer: bool = False,
                 wait_broker: bool = True, **console) -> None:
        cfg = console_config(certs, broker.lan_port, state, unit_keys, two_officer=two_officer,
                             heartbeat_stale_s=5.0, **console)
        super().__init__(cfg, PINS)
        self.port = cfg.console.listen_port
        self.start(wait_broker)


class Unit:
    """A unit on the test broker: genuine signed alerts (AlertPublisher) and a real audit log."""

    def __init__(self, certs: Path, broker, root: Path, keys, console_keys: list[str]) -> None:
        self.keys = keys
        self.db = root / "audit.db"
        self.log = AuditLog.open(self.db, self.keys.signing_key(), UNIT, head_every_n=100, head_every_s=3600)
        cfg = mh.unit_config(certs, broker.unit_port, UNIT, console_keys=console_keys, heartbeat_interval_s=1.0)
        self.publisher = AlertPublisher.open(cfg, self.keys, root / "outbox.db", **adjudication_callbacks(self.log))

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
