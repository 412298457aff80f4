"""``create_app(settings)``: the whole server as one aiohttp Application.

Start-up order (and shutdown, mirrored, through ``cleanup_ctx``): the event-loop lag probe →
database (migrated, seeded on first run) → dialog store → dialog runtime → outbox → bundled
simulator (when no SMSC is set) → receipt relay (with Redis) → SMPP binds → HTTP handlers.
Shared objects sit under typed ``web.AppKey``s; nothing is global.

The Redis and SQL outboxes and the loop-lag probe are imported where they are built: a server
loads only the store it was configured with (no import cycle is behind these local imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from backend.clock import Clock, SystemClock
from backend.db import create_engine, open_backend
from backend.demo_calendar import DemoCalendar
from backend.errors import ConfigError, ServiceError
from backend.manage import seed
from dialogs import DialogSettings, build_dialogs
from dialogs.catalogue import texts
from fsm.redis_store import store_from_url
from fsm.runtime import Runtime
from gateway.binds import BindPool
from gateway.components import COMPONENTS, HTTP_LIMITS, Components
from gateway.health import health_checks, scrape_outbox
from gateway.metrics import Metrics
from gateway.outbox.base import DeliveryTracker, Outbox
from gateway.outbox.receipt_relay import ReceiptRelay, relay_client
from gateway.outbox.watch import OutboxWatch
from gateway.router import Router
from gateway.settings import Settings, SmscProfile, mask_url
from gateway.sms.text import sms_parts, text_policy
from gateway.tls import client_context, reloading_server_context
from gateway.ussd_idle import UssdIdle
from gateway.web.guards import CodeGuard, GuardedBackend, PasswordCap
from gateway.web.http import DEPS, HttpDeps, add_routes, api_errors
from gateway.web.limits import ConnectionLimits
from gateway.web.portal import Portal
from gateway.workers import WorkerSlot, assign_binds
from simulator.controller import SimulatorController
from simulator.http import add_handset_routes

log = logging.getLogger(__name__)


#: How much longer the bundled simulator's network keeps an idle USSD session than the server.
NETWORK_USSD_MARGIN = 60.0


def password_sms(language: str, password: str) -> str:
    """The portal's password SMS: the same catalogue text as the ``HASLO`` reply."""
    return texts(language)("password", password=password)


def catalogue_text(language: str, key: str) -> str:
    return texts(language)(key)


def simulator_profile(settings: Settings, sim: SimulatorController) -> SmscProfile:
    host, port = sim.smpp_address
    if not settings.simulator_tls_cert:
        return SmscProfile("idea24", "idea24", host, port, source_addr=settings.short_code)
    ca = settings.simulator_tls_ca or settings.simulator_tls_cert
    return SmscProfile(
        "idea24", "idea24", host, port, source_addr=settings.short_code, tls=True, ca=ca
    )


async def prepare_database(s: Settings, clock: Clock) -> None:
    """Migrate, and seed the catalogue plus demo subscribers where they are missing (idempotent;
    ``serve --workers N`` runs it once in the supervisor, so the workers do not race to insert
    the same rows into a fresh database)."""
    try:
        report = await seed(s.database_url, s.secret_key, demo=s.seed_demo, clock=clock)
    except (OSError, SQLAlchemyError) as exc:
        raise ConfigError(
            f"IDEA24_DATABASE_URL: cannot use {mask_url(s.database_url)}: {failure_reason(exc)}"
        ) from exc
    if report.demo_rows:
        log.info("database seeded", extra={"rows": report.demo_rows})


async def _database(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    s = c.settings
    await prepare_database(s, c.clock)
    # The demo data is kept current as days pass (a month end needs last month's invoice).
    roll = DemoCalendar() if s.seed_demo else None
    async with open_backend(s.database_url, s.secret_key, c.clock, on_new_day=roll) as backend:
        # Today's roll now, not in the first turn (after a long stop it can take seconds: 9 s
        # for 100,000 synthetic accounts 40 days on, on SQLite); later days add ~1/28 of that.
        await backend.context.day()
        c.backend = backend
        yield
        c.backend = None


async def _store(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    if c.settings.redis_url:
        await check_redis(c.settings.redis_url)
    store = store_from_url(c.settings.redis_url, clock=c.clock.monotonic)
    c.store = store
    try:
        yield
    finally:
        await store.aclose()


async def check_redis(url: str) -> None:
    """PING once (start-up and ``idea24 check``): ConfigError naming the key if no answer."""
    from redis.exceptions import RedisError

    from fsm.redis_connect import redis_from_url

    client = redis_from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        raise ConfigError(
            f"IDEA24_REDIS_URL: cannot reach {mask_url(url)}: {failure_reason(exc)}"
        ) from exc
    finally:
        await client.aclose()


def failure_reason(exc: BaseException) -> str:
    """The first line of the innermost cause: what an operator can act on."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    assert c.store is not None
    dialog_settings = DialogSettings(
        language=c.settings.language,
        sms_dialog_timeout=c.settings.sms_dialog_timeout,
        ussd_timeout=c.settings.ussd_timeout,
        sms_parts=partial(sms_parts, policy=text_policy(c.settings.encoding)),
    )
    dialogs = build_dialogs(dialog_settings, c.clock)
    guard = CodeGuard(c.store, c.settings.code_guess_limit, c.metrics, c.clock.monotonic)
    smpp_backend = GuardedBackend(c.backend, guard, "smpp")
    http_backend = GuardedBackend(c.backend, guard, "http")
    timer = c.clock.monotonic
    c.runtime = Runtime(c.store, dialogs, smpp_backend, clock=timer)
    c.http_runtime = Runtime(c.store, dialogs, http_backend, clock=timer)
    yield


async def _outbox(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    s = c.settings
    if s.redis_url:
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from fsm.redis_connect import redis_from_url
        from gateway.outbox.redis import RedisOutbox

        # Ride out a Redis restart or failover (~10 s): a reply is queued late, not lost.
        client = redis_from_url(
            s.redis_url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=25),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        outbox: Outbox = RedisOutbox(client)
        try:
            c.outbox = outbox
            c.metrics.outbox.watch(outbox)
            yield
        finally:
            c.metrics.outbox.watch(None)
            await outbox.close()
            await client.aclose()
    else:
        from gateway.outbox.sql import SqlOutbox

        # pre-ping: a connection a database server cut (restart, failover, idle kill) is
        # replaced at checkout instead of failing the put of a turn's replies. A SQLite file
        # has no server to lose, and the ping would cost a thread hop per transaction.
        engine = create_engine(
            s.database_url, pool_pre_ping=not s.database_url.startswith("sqlite")
        )
        sql_outbox = SqlOutbox(engine)
        await sql_outbox.create()
        c.outbox = sql_outbox
        try:
            yield
        finally:
            await sql_outbox.close()
            await engine.dispose()


async def _simulator(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    if c.simulator is None:
        yield
        return
    try:
        await c.simulator.start()
    except OSError as exc:
        s = c.settings
        raise ConfigError(
            f"--simulator-smpp/--simulator-http: cannot listen on {s.simulator_smpp_host}:"
            f"{s.simulator_smpp_port} or port {s.simulator_http_port} ({exc.strerror}); is another"
            " idea24 or simulator running? choose free ports with those flags"
        ) from exc
    try:
        yield
    finally:
        await c.simulator.stop()


async def _binds(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    assert c.runtime is not None and c.outbox is not None and c.store is not None
    s = c.settings
    profiles = list(s.smsc)
    if c.worker is not None:
        profiles = list(assign_binds(s.smsc, c.worker.count)[c.worker.index])
    if c.simulator is not None:
        profiles = [simulator_profile(s, c.simulator)]
    metrics = c.metrics
    idle = _ussd_idle(c)

    def ussd_queued(msisdn: str) -> None:
        # The router and the pool's inbound side need each other: the pool is built with this
        # router just below, and the router calls this only once the pool is receiving.
        pool.inbound.queued(msisdn)

    router = Router(c.runtime, c.outbox, metrics, on_ussd_queued=ussd_queued, idle=idle)
    c.router = router
    tracker = DeliveryTracker()  # its counters reach /metrics through metrics.pool
    pool = BindPool(
        profiles,
        c.outbox,
        router,
        tracker=tracker,
        policy=text_policy(s.encoding),
        # Link tuning no flag carries (e.g. a short reconnect back-off in fault tests).
        session_options=s.extra.get("session_options"),
        # Redis or PostgreSQL: other processes may take our replies from the same outbox.
        shared_outbox=bool(s.redis_url) or not s.database_url.startswith("sqlite"),
    )
    c.pool = pool
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(idle.aclose)
        if s.redis_url:
            # Entered first, left last: receipts still parked when the binds are closed go to
            # the other processes too.
            await stack.enter_async_context(
                # extra["receipt_relay"]: relay tuning no flag carries (short grace in tests).
                _receipt_relay(s.redis_url, tracker, s.extra.get("receipt_relay"))
            )
        await stack.enter_async_context(pool)
        metrics.pool.watch(pool.snapshot)
        if c.worker is not None:
            await stack.enter_async_context(_publishing(metrics))
        try:
            yield
        finally:
            metrics.pool.watch(None)
    c.pool = None
    c.router = None


def _ussd_idle(c: Components) -> UssdIdle:
    """Idle USSD sessions ended with the catalogue's text, in the subscriber's language."""
    store, backend, outbox = c.store, c.backend, c.outbox
    assert store is not None and backend is not None and outbox is not None
    default = c.settings.language

    async def is_open(msisdn: str) -> bool:
        return await store.load(msisdn, "ussd") is not None

    async def expired_text(msisdn: str) -> str:
        try:
            lang = (await backend.subscriber(msisdn)).language
        except ServiceError:
            lang = default
        return texts(lang)("ussd.expired")

    async def send(msisdn: str, text: str, meta: Mapping[str, Any]) -> None:
        await outbox.put(msisdn, text, meta)

    return UssdIdle(c.settings.ussd_timeout, is_open, expired_text, send)


#: Seconds between a worker's pool snapshots for the other workers' /metrics.
PUBLISH_EVERY = 1.0


@contextlib.asynccontextmanager
async def _publishing(metrics: Metrics) -> AsyncIterator[None]:
    """This worker's bind counters written for whichever worker answers a scrape."""

    async def loop() -> None:
        while True:
            try:
                metrics.pool.publish()
            except OSError as exc:  # the directory went with the supervisor: nothing to share
                log.warning("pool metrics not published: %s", exc)
            await asyncio.sleep(PUBLISH_EVERY)

    task = asyncio.get_running_loop().create_task(loop(), name="metrics-publish")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _receipt_relay(
    url: str,
    tracker: DeliveryTracker,
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[ReceiptRelay]:
    """Receipts that reached this process for another one's message, and theirs for ours, over
    Redis pub/sub (gateway/outbox/receipt_relay.py): several processes share one SMSC account."""
    client = relay_client(url)
    relay = ReceiptRelay(tracker, client, **dict(options or {}))
    try:
        async with relay:
            yield relay
    finally:
        await client.aclose()


async def _http(app: web.Application) -> AsyncIterator[None]:
    c = app[COMPONENTS]
    assert c.backend is not None and c.runtime is not None and c.outbox is not None
    assert c.store is not None and c.http_runtime is not None
    s = c.settings
    portal = Portal(
        c.backend,
        c.http_runtime,
        c.outbox,
        password_sms,
        s.short_code,
        password_cap=PasswordCap(c.store, s.password_rate, c.metrics),
        catalogue=catalogue_text,
        policy=text_policy(s.encoding),
        language=s.language,
    )
    deps = app[DEPS]
    deps.portal = portal
    deps.ussd = portal
    yield


def _simulator_tls(settings: Settings) -> ssl.SSLContext | None:
    """The bundled simulator's SMPP-over-TLS context (``--simulator-tls-cert``), or None."""
    if not settings.simulator_tls_cert:
        return None
    return reloading_server_context(
        settings.simulator_tls_cert,
        settings.simulator_tls_key,
        named="--simulator-tls-cert / --simulator-tls-key",
    )


def _check_tls_files(settings: Settings) -> None:
    """Each ``smpps://`` bind's files make a context now, so a wrong path stops the start with
    one line; the link reads them again on every connect (rotation)."""
    for profile in settings.smsc:
        if profile.tls:
            try:
                client_context(profile.ca, profile.cert, profile.key)
            except ConfigError as exc:
                raise ConfigError(f"--smsc {profile.url}: {exc}") from exc


def create_app(
    settings: Settings, clock: Clock | None = None, worker: WorkerSlot | None = None
) -> web.Application:
    """The server; ``clock`` (the system clock by default) is the one every "now" comes from;
    ``worker``: one of ``idea24 serve --workers N`` (its share of the binds, metrics summed over
    the workers)."""
    _check_tls_files(settings)
    limits = ConnectionLimits(settings.http_max_connections, settings.http_header_timeout)
    app = web.Application(middlewares=[limits.middleware, api_errors])
    app[HTTP_LIMITS] = limits
    if worker is None:
        metrics = Metrics()
    else:
        metrics = Metrics(worker=str(worker.index), shared_dir=worker.metrics_dir)
    metrics.http_limits.watch(limits)
    components = Components(
        settings,
        metrics,
        clock or SystemClock(),
        outbox_watch=OutboxWatch(settings.outbox_stall),
        worker=worker,
    )
    app[COMPONENTS] = components
    if settings.uses_simulator:
        components.simulator = SimulatorController(
            host=settings.simulator_smpp_host,
            port=settings.simulator_smpp_port,
            http_port=settings.simulator_http_port,
            # The network's USSD timer runs longer than the server's idle timeout, as a real
            # network's does: an idle session is ended by the server, with a text.
            ussd_timeout=settings.ussd_timeout + NETWORK_USSD_MARGIN,
            tls=_simulator_tls(settings),
            tls_only=True,
        )
        add_handset_routes(
            app,
            components.simulator.smsc,
            prefix="/phone",
            short_code=settings.short_code,
            ussd_code=settings.ussd_code,
        )
    app[DEPS] = HttpDeps(
        settings,
        metrics,
        _Unready(),
        _Unready(),
        health_checks=health_checks(components),
        before_scrape=scrape_outbox(components),
    )
    add_routes(app)
    app.cleanup_ctx.extend(
        [_loop_lag, _database, _store, _runtime, _outbox, _simulator, _binds, _http]
    )
    return app


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    """The event loop's lag as a metric, from start-up to shutdown (gateway/loop_lag.py)."""
    from gateway.loop_lag import probe_loop_lag

    probe = asyncio.get_running_loop().create_task(
        probe_loop_lag(app[COMPONENTS].metrics.loop_lag.observe)
    )
    try:
        yield
    finally:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe


class _Unready:
    """Stands in for the portal until start-up finished (the HTTP site opens after it)."""

    async def send_temp_password(self, msisdn: str) -> None:
        raise web.HTTPServiceUnavailable()

    async def verify_temp_password(self, msisdn: str, password: str) -> bool:
        raise web.HTTPServiceUnavailable()

    async def ussd_turn(
        self, msisdn: str, session_id: str, text: str, dialled: str | None = None
    ) -> tuple[str, bool]:
        raise web.HTTPServiceUnavailable()

    async def ussd_refusal(self, key: str, msisdn: str | None = None) -> str:
        return texts("pl")(key)
