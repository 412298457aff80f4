"""The server's HTTP side: portal password API, USSD from an HTTP aggregator, health, metrics.

Handlers only translate HTTP to calls on the objects in :class:`HttpDeps` and back; errors come
back as JSON ``{"error": {"code", "message"}}`` with a 4xx status, never a 500 for bad input.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from backend.errors import InvalidInput, LockedOut, NotFound, RateLimited, ServiceError
from gateway.sms.msisdn import normalise_msisdn
from gateway.web.access import UssdAccess
from gateway.web.guards import GlobalRateLimited
from gateway.web.openapi import openapi_document
from gateway.web.protocols import HttpMetrics, HttpSettings

log = logging.getLogger(__name__)

#: Aggregators' session ids are short tokens; a longer one would not fit the USSD session record.
MAX_SESSION_ID = 100
#: A body aiohttp cannot read: bad Content-Encoding, a broken multipart, a cut chunked stream.
UNREADABLE_BODY = (RequestPayloadError, HttpProcessingError)


class PasswordPortal(Protocol):
    """What the portal API needs from the layers below."""

    async def send_temp_password(self, msisdn: str) -> None: ...

    async def verify_temp_password(self, msisdn: str, password: str) -> bool: ...


class UssdTurns(Protocol):
    """One USSD turn from an HTTP aggregator: returns (text, end_session); and the text of a
    refusal (catalogue key) in the subscriber's language."""

    async def ussd_turn(
        self, msisdn: str, session_id: str, text: str, dialled: str | None = None
    ) -> tuple[str, bool]: ...

    async def ussd_refusal(self, key: str, msisdn: str | None = None) -> str: ...


HealthCheck = Callable[[], Awaitable[Any]]


@dataclass
class HttpDeps:
    settings: HttpSettings
    metrics: HttpMetrics
    portal: PasswordPortal
    ussd: UssdTurns
    health_checks: Mapping[str, HealthCheck] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    #: run before each /metrics render: gauges that need I/O to read (the outbox depth)
    before_scrape: Callable[[], Awaitable[None]] | None = None
    ussd_access: UssdAccess = field(init=False)

    def __post_init__(self) -> None:
        self.ussd_access = UssdAccess.from_settings(self.settings)


DEPS = web.AppKey("http_deps", HttpDeps)


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8; nesting past the C stack
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "bad_json", "message": "body is not valid JSON"}}),
            content_type="application/json",
        ) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "bad_json", "message": "body must be an object"}}),
            content_type="application/json",
        )
    return body


def _require_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise web.HTTPBadRequest(
            text=json.dumps(
                {
                    "error": {
                        "code": "missing_field",
                        "message": f"{name} is required",
                        "field": name,
                    }
                }
            ),
            content_type="application/json",
        )
    return value.strip()


def _check_api_key(request: web.Request, deps: HttpDeps) -> web.Response | None:
    given = request.headers.get("X-API-Key", "")
    if not hmac.compare_digest(given.encode(), deps.settings.api_key.encode()):
        return json_error(401, "unauthorized", "missing or wrong X-API-Key")
    return None


def _msisdn(body: Mapping[str, Any]) -> str:
    raw = _require_str(body, "msisdn")
    try:
        return normalise_msisdn(raw)
    except InvalidInput as exc:
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": {"code": "invalid_msisdn", "message": exc.reason, "field": "msisdn"}}
            ),
            content_type="application/json",
        ) from exc


async def request_password(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if (denied := _check_api_key(request, deps)) is not None:
        return denied
    msisdn = _msisdn(await _json_body(request))
    try:
        await deps.portal.send_temp_password(msisdn)
    except NotFound:
        # Same answer as for a subscriber: the API must not tell who is a customer.
        log.info("password requested for a non-subscriber", extra={"msisdn": msisdn})
    except RateLimited as exc:
        scope = "global" if isinstance(exc, GlobalRateLimited) else "number"
        if scope == "number":
            deps.metrics.password_requests_refused.labels(scope).inc()
        response = json_error(
            429,
            "rate_limited",
            "too many password requests"
            + (" (all numbers: the operator's cap)" if scope == "global" else ""),
            retry_after=int(exc.retry_after),
        )
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after)))
        return response
    except LockedOut as exc:
        return json_error(429, "locked_out", "number locked", until=exc.until.isoformat())
    return web.json_response({"status": "sent"}, status=202)


async def verify_password(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if (denied := _check_api_key(request, deps)) is not None:
        return denied
    body = await _json_body(request)
    msisdn = _msisdn(body)
    password = _require_str(body, "password")
    try:
        valid = await deps.portal.verify_temp_password(msisdn, password)
    except LockedOut as exc:
        return web.json_response(
            {"valid": False, "error": {"code": "locked_out", "until": exc.until.isoformat()}},
            status=429,
        )
    except (NotFound, ServiceError):
        valid = False
    return web.json_response({"valid": valid}, status=200 if valid else 401)


async def ussd_aggregator(request: web.Request) -> web.Response:
    """Africa's-Talking-style aggregator: ``text`` holds every answer so far joined by ``*``.

    Refused (401/403, body unread, nothing run) unless the caller passes the key check
    (gateway/web/access.py)."""
    deps = request.app[DEPS]
    given = request.headers.get("X-API-Key") or request.query.get("key", "")
    refusal = deps.ussd_access.check(given, request.remote)
    if refusal is not None:
        deps.metrics.ussd_http_refused.labels(refusal.code).inc()
        return json_error(refusal.status, refusal.code, refusal.message)
    try:
        form = await request.post()
    except UNREADABLE_BODY:
        said = await deps.ussd.ussd_refusal("notice.error")
        return web.Response(status=400, text=f"END {said}", content_type="text/plain")
    session_id = str(form.get("sessionId", "")).strip()
    phone = str(form.get("phoneNumber", "")).strip()
    service_code = str(form.get("serviceCode", "")).strip() or deps.settings.ussd_code
    answers = str(form.get("text", "")).strip()
    # The subscriber may see what an aggregator is told: a catalogue text, not an English reason.
    if not session_id or not phone or len(session_id) > MAX_SESSION_ID:
        said = await deps.ussd.ussd_refusal("notice.error")
        return web.Response(status=400, text=f"END {said}", content_type="text/plain")
    try:
        msisdn = normalise_msisdn(phone)
    except InvalidInput:
        said = await deps.ussd.ussd_refusal("error.not_found.subscriber")
        return web.Response(status=400, text=f"END {said}", content_type="text/plain")
    text, dialled = aggregator_turn(service_code, answers)
    reply, end = await deps.ussd.ussd_turn(msisdn, session_id, text, dialled)
    deps.metrics.messages_in.labels("ussd_http", "ok").inc()
    return web.Response(text=("END " if end else "CON ") + reply, content_type="text/plain")


def aggregator_turn(service_code: str, answers: str) -> tuple[str, str | None]:
    """(text, dialled) of an aggregator request: ``text`` holds every answer so far joined by
    ``*`` (or, from some, the whole dial string). The turn is the last answer; ``dialled`` is
    the dial string they amount to (``*100#`` + ``2*1`` → ``*100*2*1#``), which the dialog
    replays when the session is new to it — a first request that already carries answers."""
    if answers == "":
        return service_code, None
    if answers.startswith("*") and answers.endswith("#"):
        return answers, None  # a dial string itself: a new session from it
    steps = answers.split("*")
    prefix = service_code[:-1] if service_code.endswith("#") else service_code
    return steps[-1], f"{prefix}*{answers}#"


async def healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    checks: dict[str, Any] = {}
    healthy = True
    for name, check in deps.health_checks.items():
        try:
            result = await check()
            checks[name] = result if result is not None else "ok"
        except Exception as exc:  # a health check reports any failure, whatever its type
            healthy = False
            checks[name] = f"error: {type(exc).__name__}"
    body = {
        "status": "ok" if healthy else "degraded",
        "uptime_s": round(time.monotonic() - deps.started_at, 1),
        "checks": checks,
    }
    return web.json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if deps.before_scrape is not None:
        await deps.before_scrape()
    return web.Response(
        body=deps.metrics.render(), headers={"Content-Type": deps.metrics.content_type}
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[DEPS].settings))


@web.middleware
async def api_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count requests and turn anything unexpected into a JSON 500 without leaking details."""
    deps = request.app[DEPS]
    route = (
        request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
    )
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        deps.metrics.http_requests.labels(route, str(exc.status)).inc()
        raise
    except UNREADABLE_BODY:
        # The body itself is broken (bad Content-Encoding, cut chunked stream): the client's fault.
        deps.metrics.http_requests.labels(route, "400").inc()
        return json_error(400, "bad_body", "request body cannot be read")
    except Exception:
        log.exception("unhandled error in %s", route)
        deps.metrics.http_requests.labels(route, "500").inc()
        return json_error(500, "internal", "internal error")
    deps.metrics.http_requests.labels(route, str(response.status)).inc()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/passwords", request_password)
    app.router.add_post("/api/v1/passwords/verify", verify_password)
    app.router.add_post("/api/v1/ussd", ussd_aggregator)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/openapi.json", openapi)
