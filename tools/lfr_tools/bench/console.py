"""Console benchmark: alert publish to render in a real browser, and a burst of 50 in one second.

A real mosquitto with the project's config, a unit publishing genuine signed alerts through its
outbox (AlertPublisher.submit), the console (uvicorn over HTTPS, SSE) and Debian's headless
Chromium with an officer signed in. Latency runs from just before ``submit`` to the moment the
alert's card is inserted into the page (a MutationObserver in the page records Date.now(); both
clocks are this machine's). The peer in the same run is a plain TLS MQTT subscriber (what a
tablet with its own MQTT client would see): the ratio is what the console path costs on top.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from appliance.audit.log import AuditLog
from appliance.audit.sink import adjudication_callbacks
from appliance.config import Config, MqttConfig, UnitConfig
from appliance.keystore.file import FileKeyStore
from appliance.mqtt import AlertPublisher
from lfr_tools.broker import TabletClient, VanBroker, make_certs
from lfr_tools.consolerig import VIEWPORT, ConsoleThread, console_config, launch_chromium

UNIT = "van-dev-01"
OFFICER, PIN = "PC-BENCH", "424242"
LATENCY_ALERTS = 100
LATENCY_GAP_S = 0.2
BURST_ALERTS = 50
BURST_WINDOW_S = 1.0
# injected by the bench (not part of the page): when each card appears, and the longest main-thread stall
OBSERVER = """
window.__rendered = {};
window.__stall = {max: 0, last: performance.now()};
new MutationObserver((records) => {
  const t = Date.now();
  for (const r of records) for (const n of r.addedNodes)
    if (n.dataset && n.dataset.alerts) for (const id of n.dataset.alerts.split(' ')) window.__rendered[id] ??= t;
}).observe(document, {subtree: true, childList: true});
setInterval(() => { const now = performance.now();
  window.__stall.max = Math.max(window.__stall.max, now - window.__stall.last - 50); window.__stall.last = now; }, 50);
"""


def _percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"n": 0}
    ordered = sorted(values_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1), "p90_ms": round(pick(0.9), 1),
            "p99_ms": round(pick(0.99), 1), "max_ms": round(ordered[-1], 1)}


def _alert(i: int) -> dict:
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    crop = np.random.default_rng(i).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return dict(camera="cam0", deployment_id="bench", subject_ref=f"WL-{i:05d}", category="bench", score=0.7,
                threshold=0.65, model_id="mobilefacenet@bench", track_id=i, quality={"size_px": 90.0},
                face_jpeg=jpeg, reference_jpeg=jpeg)


class _Rig:
    """Broker, unit, console, a plain MQTT tablet (the peer) and a signed-in browser page."""

    def __init__(self, root: Path, playwright) -> None:
        certs = make_certs(root / "certs")
        self.broker = VanBroker(root / "broker", certs)
        self.broker.start()
        keys = FileKeyStore(root / "keys")
        keys.init()
        self.console = ConsoleThread(console_config(certs, self.broker.lan_port, root / "state",
                                                    {UNIT: keys.verify_key()}), {OFFICER: PIN}).start()
        self.log = AuditLog.open(root / "audit.db", keys.signing_key(), UNIT, head_every_n=1000, head_every_s=60)
        cfg = Config(unit=UnitConfig(id=UNIT), mqtt=MqttConfig(
            port=self.broker.unit_port, ca_file=str(certs / "ca.crt"), cert_file=str(certs / f"{UNIT}.crt"),
            key_file=str(certs / f"{UNIT}.key"), console_keys=[self.console.public_key], heartbeat_interval_s=1.0))
        self.unit = AlertPublisher.open(cfg, keys, root / "outbox.db", **adjudication_callbacks(self.log))
        self.tablet = TabletClient(certs, self.broker.lan_port, [f"lfr/v1/{UNIT}/alert"], identity="tablet-02",
                                   client_id="bench-peer")
        self.tablet.wait_connected()
        self.browser = launch_chromium(playwright, certs / "console-01-https.crt")
        self.page = self.browser.new_context(viewport=VIEWPORT).new_page()
        self.page.add_init_script(OBSERVER)
        self.page.goto(self.console.url + "/")
        self.page.fill("#officer_id", OFFICER)
        self.page.fill("#pin", PIN)
        self.page.click("#signin-button")
        self.page.wait_for_selector("#status-bar")
        self.page.wait_for_function("() => document.querySelector('#link-state').textContent.includes('connected')")
        self.submitted: dict[str, float] = {}

    def submit(self, i: int) -> None:
        alert = _alert(i)
        t0 = time.time()
        self.submitted[self.unit.submit(alert)] = t0

    def rendered(self, ids) -> dict[str, float]:
        seen = self.page.evaluate("() => window.__rendered")
        return {a: seen[a] / 1000.0 for a in ids if a in seen}

    def peer_receipts(self) -> dict[str, float]:
        first: dict[str, float] = {}
        with self.tablet._lock:
            for _topic, payload, t in self.tablet.messages:
                first.setdefault(payload[payload.index(b'"alert_id":"') + 12:][:36].decode(), t)
        return first

    def close(self) -> None:
        self.browser.close()
        self.tablet.close()
        self.unit.close(timeout=2)
        self.log.close()
        self.console.stop()
        self.broker.stop()


def _wait_rendered(rig: _Rig, ids: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = rig.rendered(ids)
        if len(got) == len(ids):
            return got
        time.sleep(0.1)
    return rig.rendered(ids)


def bench_latency(rig: _Rig) -> dict:
    """100 alerts, one every 0.2 s: submit -> card in the page, and submit -> plain MQTT receipt."""
    start = len(rig.submitted)
    for i in range(LATENCY_ALERTS):
        rig.submit(start + i)
        time.sleep(LATENCY_GAP_S)
    ids = list(rig.submitted)[start:]
    rendered, peer = _wait_rendered(rig, ids, 30), rig.peer_receipts()
    browser = _percentiles([(rendered[a] - rig.submitted[a]) * 1000 for a in ids if a in rendered])
    peer_ms = sorted(round((peer[a] - rig.submitted[a]) * 1000, 1) for a in ids if a in peer)
    mqtt = _percentiles(peer_ms)
    return {"alerts": len(ids), "lost": len(ids) - len(rendered), "publish_to_render": browser,
            "peer_mqtt_receipt": mqtt, "ratio_p50": round(browser["p50_ms"] / max(mqtt["p50_ms"], 0.1), 1),
            "target_p99_ms": 1000, "met": browser.get("p99_ms", 1e9) < 1000,
            "latencies_ms": sorted(round((rendered[a] - rig.submitted[a]) * 1000, 1) for a in rendered),
            "peer_latencies_ms": peer_ms}


TAP = """(delay) => setTimeout(() => {
  const t0 = performance.now();
  document.querySelector('#mute').click();
  requestAnimationFrame(() => requestAnimationFrame(() => { window.__tap = performance.now() - t0; }));
}, delay)"""


def bench_burst(rig: _Rig) -> dict:
    """50 alerts within one second; none lost; the page answers a tap on "mute" in the middle of it.

    The tap is scheduled inside the page (click, then two animation frames: the handler ran and
    the new state was painted), so it measures the page, not the bench's own Python.
    """
    start = len(rig.submitted)
    alerts = [_alert(start + i) for i in range(BURST_ALERTS)]  # JPEGs made before the clock starts
    rig.page.evaluate("() => { window.__stall.max = 0; window.__stall.last = performance.now(); window.__tap = null; }")
    rig.page.evaluate(TAP, int(BURST_WINDOW_S * 500))
    began = time.monotonic()
    for i, alert in enumerate(alerts):
        t0 = time.time()
        rig.submitted[rig.unit.submit(alert)] = t0
        time.sleep(max(0.0, began + (i + 1) * BURST_WINDOW_S / BURST_ALERTS - time.monotonic()))
    window = time.monotonic() - began
    ids = list(rig.submitted)[start:]
    rendered = _wait_rendered(rig, ids, 30)
    all_shown = time.monotonic() - began
    tap, stall = rig.page.evaluate("() => [window.__tap, window.__stall.max]")
    return {"alerts": len(ids), "submitted_within_s": round(window, 2), "rendered": len(rendered),
            "lost": len(ids) - len(rendered), "all_rendered_after_s": round(all_shown, 2),
            "publish_to_render": _percentiles([(rendered[a] - rig.submitted[a]) * 1000 for a in rendered]),
            "latencies_ms": sorted(round((rendered[a] - rig.submitted[a]) * 1000, 1) for a in rendered),
            "tap_to_paint_ms": None if tap is None else round(tap, 1),
            "mute_took": rig.page.get_attribute("#mute", "aria-pressed") == "true",
            "longest_main_thread_stall_ms": round(stall, 1),
            "cards_in_page": rig.page.evaluate("() => document.querySelectorAll('article.card').length")}


def _png(path: Path, result: dict) -> None:
    from .plots import _pyplot  # noqa: PLC0415

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    lat, burst = result["latency"], result["burst"]
    bins = [0, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 650, 800, 1000, 1500]
    for values, label in ((lat["peer_latencies_ms"], "peer: plain MQTT subscriber"),
                          (lat["latencies_ms"], f"console, 1 alert / 0.2 s: p99 {lat['publish_to_render']['p99_ms']} ms"),
                          (burst["latencies_ms"], f"console, burst of 50 in 1 s: p99 {burst['publish_to_render']['p99_ms']} ms")):
        ax.hist(values, bins=bins, alpha=0.55, label=label)
    ax.set_xscale("symlog", linthresh=10)
    ax.axvline(1000, color="red", linestyle="--", label="target p99 1 s")
    ax.set_xlabel("ms (unit submit -> card in the officer's page)")
    ax.set_ylabel("alerts")
    ax.set_title(f"console: {lat['alerts']} alerts; load {result['load_before']}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(out_dir: Path) -> dict:
    """Run the console benchmarks; return JSON-serialisable results (and write console.png)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp, sync_playwright() as playwright:
        rig = _Rig(Path(tmp), playwright)
        try:
            result = {"load_before": load, "latency": bench_latency(rig), "burst": bench_burst(rig)}
        finally:
            rig.close()
    result["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    result["notes"] = ("wall clock from before AlertPublisher.submit (outbox commit, fsync) to the card's insertion "
                       "in a signed-in page of Debian's headless Chromium (SSE push, then the page fetches the two "
                       "images); peer: a plain TLS MQTT subscriber in the same run. Machine shared: see load.")
    out_dir.mkdir(parents=True, exist_ok=True)
    _png(out_dir / "console.png", result)
    return result
