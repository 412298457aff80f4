"""The simulator's HTTP side: the JSON API of the contract, the event stream and the web handset.

:func:`add_handset_routes` adds the page and its API under any prefix, so the main server mounts
the same handset at its ``/phone`` (API under ``/phone/api/v1``, clear of its own ``/api/v1``);
:func:`create_simulator_app` is the standalone app of ``idea24 simulator`` (API at ``/api/v1``,
page at ``/`` and ``/phone``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from backend.errors import InvalidInput
from gateway.sms.msisdn import normalise_msisdn
from gateway.sms.text import TextError
from simulator.faults import FaultError
from simulator.mo import MoEncodingError
from simulator.replay import SmscTarget, replay
from simulator.script import ScriptError, parse, record
from simulator.smsc import MoRefused, Smsc
from simulator.trace import matches
from simulator.ussd import UssdTimeout
from simulator.ussd_network import UssdError

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
#: Seconds between SSE comments that keep proxies from closing an idle stream.
HEARTBEAT = 15.0
DEMO_NUMBERS = ("48600000001", "48600000002", "48600000003", "48600000010", "48600000011")


class BadRequest(ValueError):
    """The JSON body is missing a field or has a wrong one (answered with 400)."""


class HandsetApi:
    """Request handlers over one :class:`Smsc`; ``api`` and ``prefix`` are the URL bases."""

    def __init__(self, smsc: Smsc, *, prefix: str, api: str, short_code: str, ussd_code: str):
        self.smsc = smsc
        self.prefix = prefix.rstrip("/")
        self.api = api.rstrip("/")
        self.short_code = short_code
        self.ussd_code = ussd_code

    async def page(self, request: web.Request) -> web.Response:
        html = (WEB_DIR / "phone.html").read_text(encoding="utf-8")
        config = {
            "api": self.api,
            "shortCode": self.short_code,
            "ussdCode": self.ussd_code,
            "numbers": list(DEMO_NUMBERS),
        }
        html = html.replace("{{STATIC}}", f"{self.prefix}/static").replace(
            "{{CONFIG}}", json.dumps(config).replace("<", "\\u003c")
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def mo(self, request: web.Request) -> web.Response:
        body = await _json(request)
        source = _msisdn(body, "from")
        destination = str(body.get("to") or self.short_code)
        text = _text(body)
        data_coding = body.get("data_coding")
        if data_coding is not None and not isinstance(data_coding, int):
            raise BadRequest("data_coding: expected 0, 1, 3 or 8")
        wait = body.get("wait")
        try:
            message = await self.smsc.inject_mo(
                source,
                destination,
                text,
                data_coding,
                long=str(body.get("long", "udh")),
                ack_timeout=None if wait is None else float(wait),
            )
        except (MoEncodingError, TextError) as exc:
            raise BadRequest(str(exc)) from exc
        except (TimeoutError, MoRefused) as exc:
            return _error(504, f"no ESME acknowledged the message: {exc}")
        return web.json_response(message.as_dict(), status=202)

    async def ussd(self, request: web.Request) -> web.Response:
        body = await _json(request)
        msisdn = _msisdn(body, "msisdn")
        text = _text(body)
        wait = float(body.get("wait", 10.0))
        try:
            reply = await self.smsc.dial(msisdn, text, wait)
        except UssdError as exc:
            return _error(409, str(exc))
        except UssdTimeout as exc:
            return _error(504, str(exc))
        except TextError as exc:
            raise BadRequest(str(exc)) from exc
        return web.json_response(reply.as_dict())

    async def ussd_cancel(self, request: web.Request) -> web.Response:
        msisdn = _msisdn(dict(request.query), "msisdn")
        return web.json_response({"cancelled": self.smsc.cancel_ussd(msisdn)})

    async def messages(self, request: web.Request) -> web.Response:
        msisdn = request.query.get("msisdn")
        if msisdn:
            msisdn = _msisdn({"msisdn": msisdn}, "msisdn")
        items = [m.as_dict() for m in self.smsc.messages(msisdn or None)]
        return web.json_response({"messages": items})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one ``message`` event per new or updated handset message."""
        msisdn = request.query.get("msisdn") or None
        if msisdn:
            msisdn = _msisdn({"msisdn": msisdn}, "msisdn")
        response = _sse_response()
        queue = self.smsc.store.subscribe()
        try:
            await response.prepare(request)
            await response.write(b": connected\nretry: 1000\n\n")
            while True:
                try:
                    async with asyncio.timeout(HEARTBEAT):
                        message = await queue.get()
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if message is None:
                    break
                if msisdn is not None and message.msisdn != msisdn:
                    continue
                data = json.dumps(message.as_dict(), ensure_ascii=False)
                await response.write(f"id: {message.id}\nevent: message\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.smsc.store.unsubscribe(queue)
        return response

    async def end_streams(self, app: web.Application) -> None:
        """``on_shutdown``: end every open event stream.

        aiohttp waits (up to its shutdown_timeout) for running handlers after the shutdown
        hooks; an SSE handler only returns when its stream ends, so without this a browser tab
        left on the handset page would hold ``idea24 serve`` for seconds after SIGTERM.
        """
        self.smsc.store.close()
        self.smsc.trace.close()

    async def pdus(self, request: web.Request) -> web.Response:
        """The traced PDUs, decoded, oldest first; ``msisdn``, ``bind`` and ``after`` filter."""
        msisdn, bind, after = _trace_filters(request)
        trace = self.smsc.trace
        items = trace.views(msisdn=msisdn, bind=bind, after=after)
        binds = [s.bind_info.as_dict() for s in self.smsc.sessions]
        return web.json_response({"size": trace.size, "binds": binds, "pdus": items})

    async def pdu_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one ``pdu`` event per traced PDU matching the filters. A client
        that reconnects with ``Last-Event-ID`` (or asks with ``after``) first gets what it
        missed, if the ring still holds it."""
        msisdn, bind, after = _trace_filters(request)
        last = request.headers.get("Last-Event-ID", "")
        if last.isdigit():
            after = max(after, int(last))
        trace = self.smsc.trace
        response = _sse_response()
        queue = trace.subscribe()  # before reading the ring: nothing falls in between

        async def send(view: dict[str, Any]) -> None:
            data = json.dumps(view, ensure_ascii=False)
            await response.write(f"id: {view['id']}\nevent: pdu\ndata: {data}\n\n".encode())

        try:
            await response.prepare(request)
            await response.write(b": connected\nretry: 1000\n\n")
            if after:
                for view in trace.views(msisdn=msisdn, bind=bind, after=after):
                    await send(view)
                    after = view["id"]
            while True:
                try:
                    async with asyncio.timeout(HEARTBEAT):
                        traced = await queue.get()
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if traced is None:
                    break
                view = trace.view(traced)
                if view["id"] > after and matches(view, msisdn, bind):
                    await send(view)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            trace.unsubscribe(queue)
        return response

    async def script(self, request: web.Request) -> web.Response:
        """A recording: the conversation of ``msisdn`` (comma-separated for several handsets)
        since message ``after``, as a replayable script."""
        numbers = [
            _msisdn({"msisdn": n}, "msisdn")
            for n in request.query.get("msisdn", "").split(",")
            if n.strip()
        ]
        if not numbers:
            raise BadRequest("msisdn: expected one or more phone numbers, comma-separated")
        after = request.query.get("after", "0")
        if not after.isdigit():
            raise BadRequest("after: expected the id of a message (a whole number)")
        messages = sorted(
            (m for n in set(numbers) for m in self.smsc.messages(n) if m.id > int(after)),
            key=lambda m: m.id,
        )
        name = request.query.get("name") or "recorded"
        try:
            recorded = record(messages, name=name, short_code=self.short_code)
        except ScriptError as exc:
            return _error(404, str(exc))
        return web.json_response(recorded.as_dict(), dumps=_dumps)

    async def replay_script(self, request: web.Request) -> web.Response:
        """Replay the script in the body through this simulator; 200 with ``ok`` either way."""
        try:
            script = parse(await _json(request))
        except ScriptError as exc:
            raise BadRequest(str(exc)) from exc
        result = await replay(script, SmscTarget(self.smsc, self.short_code))
        return web.json_response(result.as_dict(), dumps=_dumps)

    async def faults_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.smsc.faults.as_dict())

    async def faults_set(self, request: web.Request) -> web.Response:
        """Switch faults: any :class:`Faults` field, plus ``refuse_binds`` (seconds from now)
        and ``drop`` (true: cut every connection now)."""
        body = await _json(request)
        dropped = 0
        if body.pop("drop", False):
            dropped = self.smsc.drop_all()
        seconds = body.pop("refuse_binds", None)
        if seconds is not None:
            body["refuse_binds_until"] = self.smsc.now() + float(seconds)
        try:
            self.smsc.faults.update(**body)
        except FaultError as exc:
            raise BadRequest(str(exc)) from exc
        return web.json_response({**self.smsc.faults.as_dict(), "dropped": dropped})

    async def faults_reset(self, request: web.Request) -> web.Response:
        self.smsc.faults.reset()
        return web.json_response(self.smsc.faults.as_dict())

    async def sessions(self, request: web.Request) -> web.Response:
        return web.json_response(self.smsc.describe())


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except BadRequest as exc:
        return _error(400, str(exc))
    return response


def add_handset_routes(
    app: web.Application,
    smsc: Smsc,
    *,
    prefix: str = "/phone",
    api: str | None = None,
    short_code: str = "2424",
    ussd_code: str = "*100#",
) -> HandsetApi:
    """Add the web handset at ``prefix`` and its API at ``api`` (default ``prefix + /api/v1``)."""
    prefix = prefix.rstrip("/")
    api = (api or f"{prefix}/api/v1").rstrip("/")
    h = HandsetApi(smsc, prefix=prefix, api=api, short_code=short_code, ussd_code=ussd_code)
    if _errors not in app.middlewares:
        app.middlewares.append(_errors)
    app.router.add_get(prefix or "/", h.page)
    if prefix:
        app.router.add_get(prefix + "/", h.page)
    app.router.add_static(f"{prefix}/static", WEB_DIR, name=None, append_version=False)
    app.router.add_post(f"{api}/mo", h.mo)
    app.router.add_post(f"{api}/ussd", h.ussd)
    app.router.add_delete(f"{api}/ussd", h.ussd_cancel)
    app.router.add_get(f"{api}/messages", h.messages)
    app.router.add_get(f"{api}/events", h.events)
    app.router.add_get(f"{api}/pdus", h.pdus)
    app.router.add_get(f"{api}/pdus/events", h.pdu_events)
    app.router.add_get(f"{api}/script", h.script)
    app.router.add_post(f"{api}/replay", h.replay_script)
    app.router.add_get(f"{api}/faults", h.faults_get)
    app.router.add_post(f"{api}/faults", h.faults_set)
    app.router.add_delete(f"{api}/faults", h.faults_reset)
    app.router.add_get(f"{api}/sessions", h.sessions)
    app.on_shutdown.append(h.end_streams)
    return h


def create_simulator_app(smsc: Smsc) -> web.Application:
    """The standalone simulator app: API at ``/api/v1``, handset at ``/`` and ``/phone``."""
    app = web.Application(middlewares=[_errors])
    h = add_handset_routes(app, smsc, prefix="/phone", api="/api/v1")
    app.router.add_get("/", h.page)

    async def healthz(request: web.Request) -> web.Response:
        info = smsc.describe()
        return web.json_response(
            {"status": "ok", "sessions": len(info["sessions"]), "submitted": info["submitted"]}
        )

    app.router.add_get("/healthz", healthz)
    return app


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("expected a JSON object") from exc
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def _msisdn(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str | int) or not str(value).strip():
        raise BadRequest(f"{key}: expected a phone number such as 48600000001")
    try:
        return normalise_msisdn(str(value))
    except InvalidInput as exc:
        raise BadRequest(f"{key}: {exc.reason}") from exc


def _text(body: dict[str, Any]) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise BadRequest("text: expected a non-empty string")
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _trace_filters(request: web.Request) -> tuple[str | None, str | None, int]:
    query = request.query
    msisdn = query.get("msisdn") or None
    if msisdn is not None:
        msisdn = _msisdn({"msisdn": msisdn}, "msisdn")
    after = query.get("after", "0")
    if not after.isdigit():
        raise BadRequest("after: expected the id of a PDU already seen (a whole number)")
    return msisdn, query.get("bind") or None, int(after)


def _sse_response() -> web.StreamResponse:
    return web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
