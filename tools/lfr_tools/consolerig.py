"""The officers' console for tests, benchmarks and the demo: the real app, for real.

``console_config`` writes a console configuration beside a VanBroker (its certificates, its LAN
port, the units' pinned keys); ``ConsoleThread`` runs `appliance console` (uvicorn over HTTPS) in
a thread of this process; ``launch_chromium`` starts Debian's headless Chromium through
Playwright, trusting exactly the console's HTTPS key (never a downloaded browser).
"""
from __future__ import annotations

import base64
import hashlib
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.console.config import ConsoleConfig
from appliance.console.keys import describe
from appliance.console.server import uvicorn_config
from appliance.console.service import Console
from appliance.errors import PublishError
from appliance.keyid import public_string

from .broker import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
CONSOLE_ID = "console-01"


def console_config(certs: Path, broker_port: int, state: Path, unit_keys: dict, port: int | None = None,
                   **console) -> ConsoleConfig:
    """A console on 127.0.0.1 with the van CA's certificates; ``unit_keys`` maps unit id -> public key."""
    return ConsoleConfig.model_validate({
        "console": {"id": CONSOLE_ID, "state_dir": str(state), "listen_host": "127.0.0.1",
                    "listen_port": port or free_port(), "tls_cert": str(certs / f"{CONSOLE_ID}-https.crt"),
                    "tls_key": str(certs / f"{CONSOLE_ID}-https.key"), **console},
        "mqtt": {"port": broker_port, "ca_file": str(certs / "ca.crt"), "cert_file": str(certs / f"{CONSOLE_ID}.crt"),
                 "key_file": str(certs / f"{CONSOLE_ID}.key")},
        "units": [{"id": unit, "public_key": public_string(key)} for unit, key in unit_keys.items()]})


class ConsoleThread:
    """`appliance console` in this process: uvicorn over HTTPS in a daemon thread."""

    def __init__(self, cfg: ConsoleConfig, officers: dict[str, str] | None = None) -> None:
        import uvicorn  # noqa: PLC0415

        self.cfg = cfg
        self.console = Console.build(cfg)
        known = {o["officer_id"] for o in self.console.officers.list()}
        for officer, pin in (officers or {}).items():
            if officer not in known:
                self.console.officers.add(officer, pin)
        self.server = uvicorn.Server(uvicorn_config(self.console))
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)
        self.url = f"https://127.0.0.1:{cfg.console.listen_port}"

    def start(self, wait_broker: bool = True, timeout: float = 15.0) -> "ConsoleThread":
        """Start serving; wait until it listens (and, if asked, has reached the broker)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise PublishError("the console did not start", fix="run `appliance console --config FILE` to see why")
        if wait_broker and not self.console.link.connected.wait(max(0.1, deadline - time.monotonic())):
            raise PublishError("the console did not reach the broker", fix="check [mqtt] in the console config")
        return self

    @property
    def public_key(self) -> str:
        """The console's adjudication key as a unit pins it."""
        return describe(self.console.key)["console_key"]

    def stop(self) -> None:
        """Stop serving (the console closes its link and databases on the way out)."""
        self.server.should_exit = True
        self.thread.join(10)


def spki_pin(cert_path: Path) -> str:
    """Base64 SHA-256 of a certificate's public key, as Chromium's SPKI allow-list takes it."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def launch_chromium(playwright, https_cert: Path):
    """Headless Chromium from the Debian package with a fresh profile, trusting only the console's key."""
    if not Path(CHROMIUM).exists():
        raise PublishError("chromium is not installed", fix="apt-get install -y chromium chromium-driver")
    pin = spki_pin(https_cert)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_FLAGS + [f"--ignore-certificate-errors-spki-list={pin}"])
