"""Two-officer mode in a real headless Chromium through mosquitto: one officer cannot confirm twice,
a second, different officer completes the confirmation and both ids reach the unit's audit log.
Then a console whose key the unit does not pin: its signed decision is refused and audited."""
from __future__ import annotations

import pytest

from appliance.keyid import key_id
from console_helpers import UNIT, VIEWPORT, RunningConsole, Unit, launch_browser, screenshot, sign_in, wait_for
from console_helpers import faces_for_screens
from mqtt_helpers import VanBroker, new_keystore, require_mosquitto, van_certs  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rig(tmp_path_factory, van_certs):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    require_mosquitto()
    root = tmp_path_factory.mktemp("console-two")
    broker = VanBroker(root / "broker", van_certs)
    broker.start()
    keys = new_keystore(root / "keys")
    console = RunningConsole(van_certs, broker, root / "state", {UNIT: keys.verify_key()}, two_officer=True)
    unit = Unit(van_certs, broker, root, keys, [console.public_key])  # pins this console only
    made = {"broker": broker, "console": console, "unit": unit, "certs": van_certs, "keys": keys, "root": root}
    with sync_playwright() as playwright:
        made["browser"] = launch_browser(playwright, van_certs)
        try:
            yield made
        finally:
            made["browser"].close()
            unit.close()
            made["console"].stop()  # a test may have replaced it
            broker.stop()


def _page(rig, officer: str):
    context = rig["browser"].new_context(viewport=VIEWPORT)
    page = context.new_page()
    sign_in(page, rig["console"].url, officer)
    page.wait_for_selector("#status-bar")
    return context, page


def test_a_confirm_needs_a_second_different_officer(rig):
    context, page = _page(rig, "PC-4411")
    try:
        face, reference = faces_for_screens()
        aid = rig["unit"].alert(subject_ref="WL-000777", category="wanted: robbery", face_jpeg=face,
                                reference_jpeg=reference)
        selector = f'article.card[data-alerts~="{aid}"]'
        page.wait_for_selector(selector, timeout=10_000)
        page.fill(f"{selector} input.note", "scar above the left eye")
        page.click(f"{selector} button.confirm")
        page.wait_for_selector(f'{selector}[data-state="awaiting_second"]')
        assert "Confirmed by PC-4411" in page.inner_text(f"{selector} .second")
        page.wait_for_function("() => [...document.querySelectorAll('article.card img')]"
                               ".every(img => img.complete && img.naturalWidth > 0)")
        screenshot(page, "console-two-officer.png")
        page.click(f"{selector} .actions button.confirm")  # the same officer again: refused
        page.wait_for_selector("#toast.show")
        assert "second, different officer" in page.inner_text("#toast")
        page.fill(f"{selector} input.second-id", "PS-0912")
        page.fill(f"{selector} input.second-pin", "999999")  # a wrong PIN does not complete it
        page.click(f"{selector} button.countersign")
        page.wait_for_function("() => document.querySelector('#toast').textContent.includes('Wrong officer id or PIN')")
        assert page.query_selector(f'{selector}[data-state="awaiting_second"]')
        assert rig["unit"].entries("adjudication") == []  # nothing was sent for a half-made confirmation
        page.fill(f"{selector} input.second-pin", "135791")
        page.click(f"{selector} button.countersign")
        page.wait_for_selector(selector, state="detached")
    finally:
        context.close()
    assert wait_for(lambda: rig["unit"].entries("adjudication"), 10)
    [entry] = rig["unit"].entries("adjudication")
    assert (entry["alert_id"], entry["decision"], entry["officer_ids"]) == (aid, "confirmed", ["PC-4411", "PS-0912"])
    assert entry["note"] == "scar above the left eye"


def test_second_officer_on_another_tablet_completes_it(rig):
    first_ctx, first = _page(rig, "PC-4411")
    second_ctx, second = _page(rig, "PC-7001")
    try:
        aid = rig["unit"].alert(subject_ref="WL-000778")
        selector = f'article.card[data-alerts~="{aid}"]'
        first.wait_for_selector(selector, timeout=10_000)
        first.click(f"{selector} button.confirm")
        second.wait_for_selector(f'{selector}[data-state="awaiting_second"]', timeout=10_000)  # pushed live
        second.click(f"{selector} .actions button.confirm")
        first.wait_for_selector(selector, state="detached", timeout=10_000)
    finally:
        first_ctx.close()
        second_ctx.close()
    assert wait_for(lambda: [e for e in rig["unit"].entries("adjudication") if e["alert_id"] == aid], 10)
    entry = next(e for e in rig["unit"].entries("adjudication") if e["alert_id"] == aid)
    assert entry["officer_ids"] == ["PC-4411", "PC-7001"]


def test_a_console_key_the_unit_does_not_pin_is_refused_and_audited(rig):
    rig["console"].stop()  # the same certificate and client id: one console at a time
    stranger = RunningConsole(rig["certs"], rig["broker"], rig["root"] / "state-2", {UNIT: rig["keys"].verify_key()})
    rig["console"] = stranger
    context, page = _page(rig, "PC-4411")
    try:
        aid = rig["unit"].alert(subject_ref="WL-000779")
        selector = f'article.card[data-alerts~="{aid}"]'
        page.wait_for_selector(selector, timeout=10_000)
        page.click(f"{selector} button.reject")
        page.wait_for_selector(selector, state="detached")
    finally:
        context.close()
    unit = rig["unit"]
    assert wait_for(lambda: [e for e in unit.entries("adjudication_refused") if e.get("alert_id") == aid], 10)
    refused = next(e for e in unit.entries("adjudication_refused") if e.get("alert_id") == aid)
    assert refused["reason"] == "unknown_key" and refused["sender"] == "console-01"
    assert refused["console_key"] == key_id(stranger.console.key.public_key())
    assert aid not in {e["alert_id"] for e in unit.entries("adjudication")}
