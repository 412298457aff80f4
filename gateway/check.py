"""``idea24 check``: the configuration, then the database, Redis and each SMSC bind, reached once.

For deployment pipelines and first installs. One line per check — ``ok``, ``warn``, ``skip`` or
``FAIL``, the check's name, what it found — printed as each check ends; the first failure stops
the run. Exit 0 when everything answered, 1 when a check failed, 2 when the configuration itself
is wrong (as ``idea24 serve`` would refuse it).

Nothing is changed: the database is asked for its migration revision, Redis is PINGed, and each
bind is opened (over TLS for ``smpps://``, verified as the link verifies it), bound with the
profile's credentials, unbound and closed. A deliver_sm the SMSC
hands over meanwhile is answered ESME_RX_T_APPN (temporary), so it comes again to the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from backend.errors import ConfigError
from gateway import tls
from gateway.esme.link import bind_request
from gateway.esme.records import LinkMode, status_name
from gateway.settings import Settings, SmscProfile, load_settings, mask_url
from gateway.smpp import codec
from gateway.smpp.errors import ProtocolError
from gateway.smpp.pdu import Pdu, Status

Outcome = Literal["ok", "warn", "skip", "FAIL"]

#: Exit codes: every check answered; a check failed; the configuration is wrong.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.outcome:<4}  {self.name:<8}  {self.detail}"


def run(args: argparse.Namespace, emit: Callable[[str], None] | None = None) -> int:
    """The ``idea24 check`` command: the exit code."""
    say = emit or (lambda line: print(line, flush=True))
    flags: dict[str, Any] = {
        "smsc": args.smsc,
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "lab": True if args.lab else None,
    }
    try:
        settings = load_settings(flags, config_file=args.config)
    except ConfigError as exc:
        say(Result("FAIL", "config", str(exc)).line())
        return EXIT_CONFIG
    for result in configuration(settings):
        say(result.line())
    ok = asyncio.run(run_checks(settings, args.timeout, lambda r: say(r.line())))
    return EXIT_OK if ok else EXIT_FAILED


def configuration(settings: Settings) -> list[Result]:
    binds = len(settings.smsc)
    smsc = f"{binds} SMSC bind{'s' if binds != 1 else ''}" if binds else "no SMSC"
    sessions = f"Redis {mask_url(settings.redis_url)}" if settings.redis_url else "memory"
    found = [
        Result(
            "ok",
            "config",
            f"database {mask_url(settings.database_url)}, sessions in {sessions}, {smsc}",
        )
    ]
    if settings.dev_secrets:
        found.append(
            Result(
                "warn",
                "secrets",
                "development API key or secret key in use: set IDEA24_API_KEY and"
                " IDEA24_SECRET_KEY in production",
            )
        )
    return found


async def run_checks(settings: Settings, within: float, emit: Callable[[Result], None]) -> bool:
    """Database, Redis, then every bind of every SMSC, in that order; False at the first
    failure (reported through ``emit`` like every other result)."""
    checks: list[Callable[[], Awaitable[Result]]] = [
        partial(check_database, settings.database_url, within),
        partial(check_redis_once, settings.redis_url, within),
    ]
    checks += [
        partial(check_bind, profile, mode, within)
        for profile in settings.smsc
        for mode in link_modes(profile)
    ]
    if not settings.smsc:
        checks.append(
            partial(_skipped, "smsc", "none configured: idea24 serve starts the bundled simulator")
        )
    for check in checks:
        result = await check()
        emit(result)
        if result.outcome == "FAIL":
            return False
    return True


async def _skipped(name: str, why: str) -> Result:
    return Result("skip", name, why)


def link_modes(profile: SmscProfile) -> Sequence[LinkMode]:
    """The binds one SMSC profile opens: one transceiver, or a transmitter and a receiver."""
    return ("tx", "rx") if profile.bind == "tx+rx" else ("trx",)


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


async def check_database(url: str, within: float) -> Result:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.db import create_engine, schema_revisions
    from gateway.app import failure_reason

    shown = mask_url(url)
    engine = create_engine(url)
    try:
        current, newest = await asyncio.wait_for(schema_revisions(engine), within)
    except TimeoutError:
        return Result("FAIL", "database", f"{shown}: no answer within {within:g} s")
    except (OSError, SQLAlchemyError) as exc:
        return Result("FAIL", "database", f"{shown}: {failure_reason(exc)}")
    finally:
        await engine.dispose()
    if current is None:
        schema = "no schema yet (idea24 db upgrade, or idea24 serve, creates it)"
    elif current == newest:
        schema = f"schema at the newest migration ({current})"
    else:
        schema = f"schema at {current}, newest {newest}: run idea24 db upgrade"
    return Result("ok", "database", f"{shown} answered; {schema}")


async def check_redis_once(url: str | None, within: float) -> Result:
    from gateway.app import check_redis

    if not url:
        return Result("skip", "redis", "IDEA24_REDIS_URL unset: sessions and outbox in-process")
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check_redis(url), within)
    except TimeoutError:
        return Result("FAIL", "redis", f"{mask_url(url)}: no answer within {within:g} s")
    except ConfigError as exc:
        return Result("FAIL", "redis", str(exc))
    return Result("ok", "redis", f"{mask_url(url)} answered PING in {_ms(started)}")


async def check_bind(profile: SmscProfile, mode: LinkMode, within: float) -> Result:
    """Connect, bind, unbind, close: ok when the SMSC accepted the bind."""
    name = f"{profile.name}/{mode}"
    started = time.perf_counter()
    try:
        context = tls.client_context(profile.ca, profile.cert, profile.key) if profile.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                profile.host,
                profile.port,
                ssl=context,
                server_hostname=profile.host if context else None,
            ),
            within,
        )
    except TimeoutError:
        return Result("FAIL", "smsc", f"{name}: no connection within {within:g} s")
    except (ssl.SSLError, tls.TlsFilesError) as exc:
        return Result("FAIL", "smsc", f"{name}: TLS: {tls.explain(exc)[1]}")
    except OSError as exc:
        return Result("FAIL", "smsc", f"{name}: cannot connect ({exc.strerror or exc})")
    conn = codec.SmppConnection("esme")
    try:
        request = bind_request(profile, mode)
        try:
            resp = await asyncio.wait_for(_exchange(reader, writer, conn, request), within)
        except TimeoutError:
            return Result("FAIL", "smsc", f"{name}: {request.command} unanswered in {within:g} s")
        except ssl.SSLError as exc:
            return Result("FAIL", "smsc", f"{name}: TLS: {tls.explain(exc)[1]}")
        except ConnectionError as exc:
            if profile.tls:  # closed after the handshake, before any bind_resp
                why = tls.explain(tls.ClosedAfterHandshake())[1]
                return Result("FAIL", "smsc", f"{name}: TLS: {why}")
            return Result("FAIL", "smsc", f"{name}: {request.command} failed ({exc})")
        except (OSError, ProtocolError) as exc:
            return Result("FAIL", "smsc", f"{name}: {request.command} failed ({exc})")
        if resp.status != Status.ESME_ROK:
            return Result(
                "FAIL", "smsc", f"{name}: {request.command} refused: {status_name(resp.status)}"
            )
        took = _ms(started)
        closing = "closed without unbind_resp"
        with contextlib.suppress(TimeoutError, OSError, ProtocolError):
            await asyncio.wait_for(_exchange(reader, writer, conn, Pdu("unbind")), within)
            closing = "unbound"
        peer = resp.get("system_id") or ""
        by = f" by {peer}" if peer else ""
        return Result("ok", "smsc", f"{name}: {request.command} accepted{by} in {took}, {closing}")
    finally:
        conn.close()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    conn: codec.SmppConnection,
    request: Pdu,
) -> Pdu:
    """Send ``request`` and return its response. What the SMSC asks meanwhile is answered:
    enquire_link ok, anything else (a deliver_sm) with a temporary error, so the SMSC offers it
    again, to the servers."""
    sequence = -1
    while True:
        event = conn.next_event()
        if event is None:
            if sequence < 0:  # what came before the request is answered while still bound
                writer.write(conn.send(request))
                sequence = conn.last_sequence
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the SMSC closed the connection")
            conn.receive_data(data)
        elif isinstance(event, ProtocolError):
            raise event
        elif event.is_response:
            if event.sequence == sequence:
                return event
        elif event.command == "enquire_link":
            writer.write(conn.send(event.response()))
        else:
            writer.write(conn.send(event.response(Status.ESME_RX_T_APPN, message_id="")))
