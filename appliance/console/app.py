"""The console's web app (Starlette): sign-in, the alert page, its JSON API and live events (SSE).

Every endpoint but the sign-in page, the sign-in form's target and the static assets refuses a
request without a live session (401); every state change also needs the session's CSRF token
in ``X-CSRF-Token`` and, when the browser says where it comes from, ``Sec-Fetch-Site:
same-origin``. Responses carry a Content-Security-Policy without inline script, and data and
images are ``Cache-Control: no-store``.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import json
import secrets
import string
import time
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .service import Console, record_csv
from .sessions import COOKIE, SIGNIN_COOKIE, Session
from .store import DecisionRefused

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "media-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"strict-transport-security", b"max-age=31536000"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
MAX_BODY = 4096
PUBLIC_PATHS = ("/", "/signin", "/static")  # all else needs a session (tests/test_console_http.py)


class SecurityHeaders:
    """ASGI middleware: security headers on every response; no-store on all but static assets."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                cache = b"no-cache" if static else b"no-store"
                message["headers"] = headers + SECURITY_HEADERS + [(b"cache-control", cache)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(name: str, **values: str) -> str:
    text = (HERE / "pages" / name).read_text()
    return string.Template(text).substitute({k: html.escape(v, quote=True) for k, v in values.items()})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    return site in (None, "same-origin")


async def _json_body(request: Request) -> dict | None:
    body = await request.body()
    if len(body) > MAX_BODY or request.headers.get("content-type", "").split(";")[0] != "application/json":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _console(request: Request) -> Console:
    return request.app.state.console


def _session(request: Request) -> Session | None:
    return _console(request).sessions.get(request.cookies.get(COOKIE))


def guarded(handler, change: bool = False):
    """401 without a session; for a change also 403 without the CSRF token or from another site."""
    async def endpoint(request: Request) -> Response:
        session = _session(request)
        if session is None:
            return _error(401, "sign in first")
        if change:
            if not (_same_origin(request) and session.csrf_ok(request.headers.get("x-csrf-token"))):
                return _error(403, "missing or wrong CSRF token")
            _console(request).sessions.touch(session)
        return await handler(request, session)
    return endpoint


async def index(request: Request) -> Response:
    """The page when signed in; else the sign-in form with its token (and cookie)."""
    session = _session(request)
    if session is not None:
        _console(request).sessions.touch(session)
        return HTMLResponse(_page("app.html", csrf=session.csrf, officer=session.officer))
    token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
    response = HTMLResponse(_page("signin.html", token=token, message=""))
    _set_cookie(response, SIGNIN_COOKIE, token)
    return response


def _refusal(result) -> tuple[int, str]:
    if result.outcome == "locked":
        until = time.strftime("%H:%M", time.localtime(result.locked_until))
        return 423, f"This officer id is locked until {until} after too many wrong PINs. Ask the technician."
    return 401, "Wrong officer id or PIN."


async def signin(request: Request) -> Response:
    """The sign-in form's target: form token, then the PIN (slow, off the event loop)."""
    body = await request.body()
    form = {k: v[0] for k, v in parse_qs(body[:MAX_BODY].decode("utf-8", "replace")).items()}
    token = request.cookies.get(SIGNIN_COOKIE, "")
    if not (token and hmac.compare_digest(token, form.get("token", "")) and _same_origin(request)):
        return _error(403, "reload the sign-in page")
    result, session = await run_in_threadpool(_console(request).sign_in, form.get("officer_id", "")[:64],
                                              form.get("pin", "")[:64])
    if session is None:
        status, message = _refusal(result)
        return HTMLResponse(_page("signin.html", token=token, message=message), status_code=status)
    response = RedirectResponse("/", status_code=303)
    _set_cookie(response, COOKIE, session.token)
    return response


async def signout(request: Request, session: Session) -> Response:
    """End the session and clear its cookie."""
    _console(request).sessions.end(session.token)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def touch(request: Request, session: Session) -> Response:
    """An officer's action: the idle clock starts again (done by ``guarded``)."""
    return JSONResponse({"idle_timeout_s": _console(request).cfg.console.idle_timeout_s})


async def state(request: Request, session: Session) -> Response:
    """Everything the page shows, without images."""
    return JSONResponse(await run_in_threadpool(_console(request).state, session))


async def decision(request: Request, session: Session) -> Response:
    """One decision on a card by the signed-in officer (never an officer id from the request)."""
    body = await _json_body(request)
    if body is None or not isinstance(body.get("decision"), str) or not isinstance(body.get("note", ""), str):
        return _error(400, "send JSON {decision, note}")
    try:
        card = await run_in_threadpool(_console(request).decide, session.officer, request.path_params["card_id"],
                                       body["decision"], body.get("note", ""))
    except DecisionRefused as exc:
        return _error(409, exc.message)
    return JSONResponse({"card": card})


async def countersign(request: Request, session: Session) -> Response:
    """The second officer confirms on this tablet with their own id and PIN."""
    body = await _json_body(request)
    if body is None or not all(isinstance(body.get(k, ""), str) for k in ("officer_id", "pin", "note")):
        return _error(400, "send JSON {officer_id, pin, note}")
    try:
        result, card = await run_in_threadpool(_console(request).countersign, request.path_params["card_id"],
                                               body.get("officer_id", "")[:64], body.get("pin", "")[:64],
                                               body.get("note", ""))
    except DecisionRefused as exc:
        return _error(409, exc.message)
    if card is None:
        return _error(*_refusal(result))
    return JSONResponse({"card": card})


async def image(request: Request, session: Session) -> Response:
    """One alert's face crop or reference thumbnail (no-store; 404 once forgotten)."""
    if request.path_params["which"] not in ("face", "reference"):
        return _error(404, "no such image")
    pair = await run_in_threadpool(_console(request).store.images, request.path_params["alert_id"])
    if pair is None:
        return _error(404, "no images (forgotten at deployment end or after retention)")
    return Response(pair[0 if request.path_params["which"] == "face" else 1], media_type="image/jpeg")


async def record(request: Request, session: Session) -> Response:
    """A deployment record as a JSON or CSV download."""
    found = _console(request).store.record(request.path_params["unit"], request.path_params["deployment_id"])
    if found is None or request.path_params["fmt"] not in ("json", "csv"):
        return _error(404, "no such deployment record")
    name = f'{found["unit"]}-{found["deployment_id"]}'.replace('"', "")
    if request.path_params["fmt"] == "csv":
        return Response(record_csv(found), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{name}.csv"'})
    return JSONResponse(found, headers={"content-disposition": f'attachment; filename="{name}.json"'})


async def events(request: Request, session: Session) -> Response:
    """Server-sent events until the session ends."""
    return StreamingResponse(_stream(_console(request), session), media_type="text/event-stream")


ROUTES = [
    Route("/", index, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", guarded(signout, change=True), methods=["POST"]),
    Route("/api/touch", guarded(touch, change=True), methods=["POST"]),
    Route("/api/state", guarded(state), methods=["GET"]),
    Route("/api/events", guarded(events), methods=["GET"]),
    Route("/api/cards/{card_id}/decision", guarded(decision, change=True), methods=["POST"]),
    Route("/api/cards/{card_id}/countersign", guarded(countersign, change=True), methods=["POST"]),
    Route("/api/alerts/{alert_id}/{which:str}.jpg", guarded(image), methods=["GET"]),
    Route("/api/records/{unit}/{deployment_id}.{fmt:str}", guarded(record), methods=["GET"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]


def create_app(console: Console, lifespan=None) -> SecurityHeaders:
    """The ASGI app over one Console; ``lifespan`` starts and stops it with the server."""
    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.console = console
    return SecurityHeaders(app)


async def _stream(console: Console, session: Session):
    """Server-sent events for one page until its session ends (the page then shows sign-in)."""
    queue = console.hub.subscribe()
    try:
        yield "retry: 1000\n\n"
        while console.sessions.get(session.token) is not None:
            try:
                event = await asyncio.wait_for(queue.get(), 5.0)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(event)}\n\n"
        yield 'data: {"kind": "signed_out"}\n\n'
    finally:
        console.hub.unsubscribe(queue)
