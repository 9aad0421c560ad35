"""The officers' console in a real headless Chromium (Debian package), through a real mosquitto:
sign in, an alert with both images, confirm into the unit's audit log with a console signature
the unit verified, repeat sightings, payload text shown as text, reload keeps the queue, a forged
alert flagged, unit offline within the last-will timeout, five wrong PINs lock out, the
deployment record with JSON and CSV. Screenshots (1280x800) go to docs/images/."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.keyid import key_id
from appliance.mqtt import verify
from appliance.mqtt.adjudication import message_from_entry
from appliance.mqtt.payload import Signer, alert_body, encode
from console_helpers import UNIT, VIEWPORT, RunningConsole, Unit, launch_browser, screenshot, sign_in, wait_for
from console_helpers import faces_for_screens
from mqtt_helpers import make_alert, new_keystore, require_mosquitto, run_unit_then_crash, tls_client, unit_config
from mqtt_helpers import VanBroker, van_certs  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
OTHER = "van-dev-02"  # a second unit on the console: killed, and impersonated by a forger


@pytest.fixture(scope="module")
def rig(tmp_path_factory, van_certs):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    require_mosquitto()
    root = tmp_path_factory.mktemp("console-browser")
    broker = VanBroker(root / "broker", van_certs)
    broker.start()
    keys, other_keys = new_keystore(root / "keys"), new_keystore(root / "other-keys")
    console = RunningConsole(van_certs, broker, root / "state",
                             {UNIT: keys.verify_key(), OTHER: other_keys.verify_key()})
    unit = Unit(van_certs, broker, root, keys, [console.public_key])
    with sync_playwright() as playwright:
        browser = launch_browser(playwright, van_certs)
        try:
            yield {"broker": broker, "console": console, "unit": unit, "browser": browser, "certs": van_certs,
                   "other_keys": other_keys, "root": root}
        finally:
            browser.close()
            unit.close()
            console.stop()
            broker.stop()


@pytest.fixture
def page(rig):
    context = rig["browser"].new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.seen = []  # what the page met, for a failure message: console lines, failed and refused requests
    page.on("console", lambda m: page.seen.append(f"console {m.type}: {m.text}"))
    page.on("requestfailed", lambda r: page.seen.append(f"failed {r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and page.seen.append(f"HTTP {r.status} {r.url}"))
    sign_in(page, rig["console"].url, "PC-4411")
    page.wait_for_selector("#status-bar")
    yield page
    rescued = page.evaluate("() => document.body.dataset.rescued")
    context.close()
    assert rescued == "0", f"the periodic resync found {rescued} card(s) the live feed had lost; page log {page.seen}"


def card(page, alert_id: str):
    """The alert's card once the page shows it (20 s: the machine is shared); on failure, what the page had."""
    from playwright.sync_api import TimeoutError as PageTimeout  # noqa: PLC0415

    try:
        return page.wait_for_selector(f'article.card[data-alerts~="{alert_id}"]', timeout=20_000)
    except PageTimeout:
        shown = page.evaluate("() => [...document.querySelectorAll('article.card')].map(c => c.dataset.alerts)")
        live = page.evaluate("() => document.body.dataset.live")
        state = fetch(page, "/api/state")
        raise AssertionError(f"card for {alert_id} not shown; page has {shown}; live feed {live}; "
                             f"page log {page.seen[-20:]}; state {state['text'][:3000]}") from None


def test_alert_shows_both_images_and_confirm_reaches_the_audit_log(rig, page):
    face, reference = faces_for_screens()
    aid = rig["unit"].alert(subject_ref="WL-000123", category="wanted: burglary", face_jpeg=face,
                            reference_jpeg=reference)
    card(page, aid)
    sel = f'article.card[data-alerts~="{aid}"]'
    page.wait_for_function("() => [...document.querySelectorAll('article.card img')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    assert page.query_selector(f"{sel} img.face") and page.query_selector(f"{sel} img.reference")
    assert page.inner_text(f'.unit[data-unit="{UNIT}"] .badge') == "online"
    screenshot(page, "console-alert.png")
    page.click(f'article.card[data-alerts~="{aid}"] button.confirm')
    unit = rig["unit"]
    assert wait_for(lambda: [e for e in unit.entries("adjudication") if e["alert_id"] == aid], 10)
    entry = next(e for e in unit.entries("adjudication") if e["alert_id"] == aid)
    assert entry["officer_ids"] == ["PC-4411"] and entry["decision"] == "confirmed"
    assert entry["sender"] == "console-01" and entry["deployment_id"] == "dep-2026-11-28-a"
    console_key = rig["console"].console.key.public_key()
    assert entry["console_key"] == key_id(console_key)
    verify("adjudication", message_from_entry(entry, UNIT), console_key)  # the signature the unit checked
    page.wait_for_selector(f'#history-rows tr[data-card-id="{aid}"]', state="attached")
    assert page.query_selector(f'article.card[data-alerts~="{aid}"]') is None


def test_payload_html_and_script_show_as_text(rig, page):
    subject, category = "<img src=x onerror=window.pwned=1>", "<script>window.pwned=2</script>"
    aid = rig["unit"].alert(subject_ref=subject, category=category)
    card(page, aid)
    sel = f'article.card[data-alerts~="{aid}"]'
    assert page.inner_text(f"{sel} .subject") == subject and page.inner_text(f"{sel} .category") == category
    assert page.query_selector(f"{sel} .subject img") is None and page.query_selector(f"{sel} .category script") is None
    assert page.evaluate("() => window.pwned") is None
    page.click(f'article.card[data-alerts~="{aid}"] button.unable')


def test_repeat_sightings_join_the_subjects_card_and_one_decision_covers_them(rig, page):
    unit = rig["unit"]
    first, second = unit.alert(subject_ref="WL-REPEAT", track_id=7), unit.alert(subject_ref="WL-REPEAT", track_id=8)
    card(page, first)
    page.wait_for_selector(f'article.card[data-alerts~="{second}"][data-alerts~="{first}"]')
    assert page.inner_text(f'article.card[data-alerts~="{first}"] .sightings') == "2 sightings"
    page.click(f'article.card[data-alerts~="{first}"] button.reject')
    assert wait_for(lambda: {e["alert_id"] for e in unit.entries("adjudication") if e["decision"] == "rejected"}
                    >= {first, second}, 10)


def test_a_state_load_that_crosses_a_live_alert_does_not_hide_it(rig, page):
    """/api/state answered before an alert, delivered after the alert's live event: the card stays."""
    stale = fetch(page, "/api/state")
    held = []
    page.route("**/api/state", lambda route: held.append(route))
    page.evaluate("() => { window.pendingLoad = load(); }")
    assert wait_for(lambda: page.wait_for_timeout(50) or held, 10), "the page asked for no state"
    aid = rig["unit"].alert(subject_ref="WL-CROSSED")
    card(page, aid)  # shown by the live event
    assert "WL-CROSSED" not in stale["text"]
    held[0].fulfill(status=200, content_type="application/json", body=stale["text"])
    page.evaluate("() => window.pendingLoad")
    page.unroute("**/api/state")
    assert page.query_selector(f'article.card[data-alerts~="{aid}"]'), "the stale state load removed the live alert"
    page.click(f'article.card[data-alerts~="{aid}"] button.unable')


def test_a_units_repeat_sighting_joins_the_original_alerts_card_without_a_tone(rig, page):
    """Alert schema revision 2: "kind": "repeat_sighting" names its original; no new card, no beep."""
    unit = rig["unit"]
    page.evaluate("() => { window.__beeps = 0; window.beep = () => { window.__beeps += 1; }; }")
    first = unit.alert(subject_ref="WL-AGAIN", track_id=11)
    card(page, first)
    assert page.evaluate("() => window.__beeps") == 1, "the alert sounds"
    repeat = unit.alert(subject_ref="WL-AGAIN", track_id=12, kind="repeat_sighting", original_alert_id=first)
    sel = f'article.card[data-alerts~="{first}"][data-alerts~="{repeat}"]'
    page.wait_for_selector(f"{sel} .repeats", timeout=20_000)
    assert page.inner_text(f"{sel} .repeats") == "1 repeat sighting (not an alarm)"
    assert page.evaluate("() => window.__beeps") == 1, "a repeat sighting must not sound"
    assert page.locator('article.card:has(.subject:text-is("WL-AGAIN"))').count() == 1
    page.click(f"{sel} button.confirm")
    page.wait_for_selector(sel, state="detached")


def test_reload_keeps_the_queue(rig, page):
    ids = [rig["unit"].alert(subject_ref=f"WL-RELOAD-{i}") for i in range(3)]
    for aid in ids:
        card(page, aid)
    page.reload()
    for aid in ids:
        card(page, aid)
    assert page.evaluate("() => Object.keys(localStorage).length") == 0  # nothing put in browser storage
    for aid in ids:
        page.click(f'article.card[data-alerts~="{aid}"] button.unable')


def _forge(certs, broker, body: dict, key) -> None:
    """Publish an alert on the other unit's topic with its certificate, signed by ``key``."""
    client = tls_client(certs, OTHER, "forger")
    client.connect("127.0.0.1", broker.unit_port)
    client.loop_start()
    try:
        client.publish(f"lfr/v1/{OTHER}/alert", encode(Signer(OTHER, key).sign("alert", body)), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_forged_alert_is_flagged_never_shown_as_genuine(rig, page):
    body = alert_body(make_alert(subject_ref="WL-FORGED", category="<b>forged</b>"), OTHER)
    _forge(rig["certs"], rig["broker"], body, Ed25519PrivateKey.generate())
    flag = page.wait_for_selector(f'.flag[data-flag="{body["alert_id"]}"]', timeout=10_000)
    assert "UNVERIFIED: DO NOT ACT" in flag.inner_text()
    assert flag.query_selector(".flag-category").inner_text() == "<b>forged</b>"
    assert flag.query_selector("img") is None and flag.query_selector("button") is None
    assert page.query_selector(f'article.card[data-alerts~="{body["alert_id"]}"]') is None


def test_killed_unit_shows_offline_within_the_last_will_timeout(rig, page):
    cfg = unit_config(rig["certs"], rig["broker"].unit_port, OTHER)
    run_unit_then_crash(cfg, rig["other_keys"].root, rig["root"] / "other.db", [], wait_connected=True)
    killed = time.monotonic()
    page.wait_for_selector(f'.unit[data-unit="{OTHER}"] .badge.offline', timeout=1.5 * cfg.mqtt.keepalive_s * 1000)
    assert page.inner_text(f'.unit[data-unit="{OTHER}"] .badge') == "unit offline"
    assert time.monotonic() - killed < 1.5 * cfg.mqtt.keepalive_s
    assert page.query_selector(f'.unit[data-unit="{UNIT}"] .badge.online')


def test_five_wrong_pins_lock_the_officer_id_out(rig):
    context = rig["browser"].new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        for attempt in range(1, 6):
            sign_in(page, rig["console"].url, "PC-7001", "000000")
            expected = "Wrong officer id or PIN" if attempt < 5 else "locked"
            assert expected in page.inner_text("#signin-message"), attempt
        sign_in(page, rig["console"].url, "PC-7001")  # the right PIN no longer helps
        assert "locked" in page.inner_text("#signin-message")
        assert page.query_selector("#status-bar") is None
        sign_in(page, rig["console"].url, "PS-0912")  # another officer is not affected
        page.wait_for_selector("#status-bar")
    finally:
        context.close()
    assert rig["console"].console.officers.list()[1]["locked"]


def test_an_alert_the_console_could_not_store_is_delivered_again(rig, page, monkeypatch):
    store, real = rig["console"].console.store, rig["console"].console.store.add_alert
    calls = []

    def disk_full_once(unit, alert, now=None):
        calls.append(alert["alert_id"])
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(unit, alert, now)

    monkeypatch.setattr(store, "add_alert", disk_full_once)
    aid = rig["unit"].alert(subject_ref="WL-DISK-FULL")
    card(page, aid)  # not acknowledged the first time: the broker sent it again after the reconnect
    assert calls.count(aid) >= 2
    page.click(f'article.card[data-alerts~="{aid}"] button.unable')


def test_deployment_record_shown_with_json_and_csv_and_images_forgotten(rig, page):
    unit = rig["unit"]
    pending = unit.alert(subject_ref="WL-AT-END")
    card(page, pending)
    record = {"deployment_id": "dep-2026-11-28-a", "date": "2026-11-28", "location": "High Street, north end",
              "started": "2026-11-28T08:00:00Z", "ended": "2026-11-28T18:00:00Z", "not_before": "2026-11-28T08:00:00Z",
              "not_after": "2026-11-28T18:00:00Z", "watchlist_size": 120, "faces_seen": 5210, "alerts": 9,
              "confirmed_true": 2, "confirmed_false": 3, "unable": 3, "not_adjudicated": 1,
              "verified_alert_rate": 0.222222, "false_alerts_per_1000_faces": 0.575816, "threshold": 0.65,
              "model_id": "mobilefacenet@d8ba40c0127f", "repeat_sightings": 4}
    unit.publisher.publish_record(record)
    page.click('#tabs button[data-tab="records"]')
    shown = page.wait_for_selector('.record[data-deployment="dep-2026-11-28-a"]', timeout=10_000)
    assert shown.query_selector('[data-field="verified_alert_rate"]').inner_text() == "22.2%"
    assert shown.query_selector('[data-field="faces_seen"]').inner_text() == "5210"
    assert shown.query_selector('[data-field="repeat_sightings"]').inner_text() == "4"
    assert "Repeat sightings (not alarms)" in shown.inner_text()
    screenshot(page, "console-record.png")
    base = f"/api/records/{UNIT}/dep-2026-11-28-a"
    as_json = fetch(page, base + ".json")
    assert as_json["status"] == 200 and json.loads(as_json["text"])["confirmed_false"] == 3
    rows = list(csv.DictReader(io.StringIO(fetch(page, base + ".csv")["text"])))
    assert rows[0]["location"] == "High Street, north end" and rows[0]["alerts"] == "9"
    gone = fetch(page, f"/api/alerts/{pending}/face.jpg")
    assert gone["status"] == 404  # the deployment ended: its images are forgotten
    assert "no-store" in gone["cache"]


def fetch(page, url: str) -> dict:
    """GET from inside the page (its session cookie, its origin), as the download links do."""
    return page.evaluate("async (u) => { const r = await fetch(u); return {status: r.status, "
                         "text: await r.text(), cache: r.headers.get('cache-control')}; }", url)

