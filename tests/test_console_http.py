"""The console's HTTP surface over real HTTPS (uvicorn, the van CA's certificate): every endpoint
refuses without a session, changes need the CSRF token, cookie flags, HTTPS only, CSP without
inline script, no-store on data and images, idle sign-out."""
from __future__ import annotations

import re
import ssl
from html.parser import HTMLParser

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.console.app import PUBLIC_PATHS
from appliance.console.sessions import Sessions
from console_helpers import PINS, UNIT, RunningConsole
from mqtt_helpers import free_port, van_certs  # noqa: F401 (fixture)


class _NoBroker:
    lan_port = free_port()  # nothing listens: the console keeps retrying in the background


@pytest.fixture(scope="module")
def console(tmp_path_factory, van_certs):
    running = RunningConsole(van_certs, _NoBroker(), tmp_path_factory.mktemp("http") / "state",
                             {UNIT: Ed25519PrivateKey.generate().public_key()}, wait_broker=False)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls(van_certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(van_certs / "ca.crt"))


def client(console, tls) -> httpx.Client:
    return httpx.Client(base_url=console.url, verify=tls, follow_redirects=False, timeout=10)


def signed_in(console, tls, officer="PC-4411") -> tuple[httpx.Client, str]:
    """A client with a session cookie (through the sign-in form) and the page's CSRF token."""
    c = client(console, tls)
    page = c.get("/")
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    done = c.post("/signin", data={"token": token, "officer_id": officer, "pin": PINS[officer]})
    assert done.status_code == 303, done.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").text).group(1)
    return c, csrf


def routes(console):
    """Every route of the app but the public ones, with a concrete path and method."""
    app = console.server.config.app.app  # inside SecurityHeaders
    found = []
    for route in app.routes:
        if route.path in PUBLIC_PATHS:
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: {"which": "face", "fmt": "json"}.get(m.group(1), "x"), route.path)
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, path))
    return found


def test_every_endpoint_refuses_without_a_session(console, tls):
    found = routes(console)
    assert len(found) >= 8, found  # a new endpoint is covered without editing this test
    with client(console, tls) as c:
        for method, path in found:
            response = c.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert "no-store" in response.headers["cache-control"]


def test_sign_in_page_holds_no_data_and_the_static_assets_are_code_only(console, tls):
    with client(console, tls) as c:
        page = c.get("/")
        assert page.status_code == 200 and 'action="/signin"' in page.text and "api/" not in page.text
        assert c.get("/static/app.js").status_code == 200


def test_changes_need_the_csrf_token(console, tls):
    c, csrf = signed_in(console, tls)
    url = "/api/cards/00000000-0000-4000-8000-000000000000/decision"
    body = {"decision": "confirm", "note": ""}
    assert c.post(url, json=body).status_code == 403
    assert c.post(url, json=body, headers={"X-CSRF-Token": "x" * len(csrf)}).status_code == 403
    cross = c.post(url, json=body, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert c.post(url, json=body, headers={"X-CSRF-Token": csrf}).status_code == 409  # past CSRF: no such alert
    assert c.post("/signout", headers={"X-CSRF-Token": "nope"}).status_code == 403


def test_sign_in_needs_its_form_token(console, tls):
    with client(console, tls) as c:
        c.get("/")
        forged = c.post("/signin", data={"token": "guessed", "officer_id": "PC-4411", "pin": PINS["PC-4411"]})
        assert forged.status_code == 403 and "__Host-lfr_session" not in forged.headers.get("set-cookie", "")


def test_session_cookie_flags(console, tls):
    with client(console, tls) as c:
        token = re.search(r'name="token" value="([^"]+)"', c.get("/").text).group(1)
        done = c.post("/signin", data={"token": token, "officer_id": "PC-4411", "pin": PINS["PC-4411"]})
        cookie = next(v for v in done.headers.get_list("set-cookie") if v.startswith("__Host-lfr_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
        assert not any(f.startswith("domain") for f in flags)


def test_https_only(console):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{console.port}/", timeout=5)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline, self.handlers, self.styles = 0, [], []

    def handle_starttag(self, tag, attrs) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names:
            self.inline += 1
        self.handlers += [n for n in names if n.startswith("on")]
        self.styles += [n for n in names if n == "style"] + (["<style>"] if tag == "style" else [])


def test_csp_without_inline_script_and_pages_need_none(console, tls):
    c, _csrf = signed_in(console, tls)
    for response in (c.get("/"), client(console, tls).get("/"), c.get("/api/state")):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and response.headers["x-content-type-options"] == "nosniff"
    for html in (c.get("/").text, client(console, tls).get("/").text):
        parsed = _Scripts()
        parsed.feed(html)
        assert (parsed.inline, parsed.handlers, parsed.styles) == (0, [], [])
        assert "http://" not in html and "https://" not in html  # every asset from the console itself


def test_state_carries_no_images(console, tls):
    c, _csrf = signed_in(console, tls)
    state = c.get("/api/state")
    assert state.status_code == 200 and state.headers["cache-control"] == "no-store"
    assert "/9j/" not in state.text  # JPEG base64 never travels in the state or the events


def test_idle_and_absolute_expiry():
    sessions = Sessions(idle_s=600, max_s=3600)
    s = sessions.create("PC-1", now=0)
    assert sessions.get(s.token, now=599) is s
    assert sessions.get(s.token, now=601) is None  # idle: signed out
    s = sessions.create("PC-1", now=1000)
    for t in range(1000, 4600, 500):
        sessions.touch(s, now=t)
    assert sessions.get(s.token, now=4601) is None  # busy, but past the absolute limit
