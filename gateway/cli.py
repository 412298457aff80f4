"""The ``idea24`` command: serve, simulator, phone, db, check.

Each command imports what it runs inside its own function: ``idea24 --version``, ``phone`` or
``db upgrade`` start without loading the server, the SMPP link or aiohttp. No import cycle is
behind these local imports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from backend.errors import ConfigError
from gateway import __version__
from gateway.settings import DEFAULT_DATABASE_URL, Settings, lab_exposure, load_settings

if TYPE_CHECKING:
    from gateway.workers import WorkerSlot

_T = TypeVar("_T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idea24",
        description="Self-care over SMS and USSD for postpaid subscribers (SMPP 3.4).",
    )
    parser.add_argument("--version", action="version", version=f"idea24 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (bundled simulator when no SMSC is set)")
    serve.add_argument(
        "--smsc",
        action="append",
        metavar="URL",
        help="smpp://ID:PASSWORD@HOST:PORT, or smpps://ID:PASSWORD@HOST:PORT?ca=FILE"
        "[&cert=FILE&key=FILE] over TLS (repeatable)",
    )
    serve.add_argument(
        "--http", metavar="HOST:PORT", help="HTTP listen address (default 127.0.0.1:8024)"
    )
    serve.add_argument("--database-url", metavar="URL")
    serve.add_argument("--redis-url", metavar="URL")
    serve.add_argument("--config", metavar="FILE", help="TOML file with settings")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument(
        "--simulator-smpp",
        metavar="HOST:PORT",
        help="where the bundled simulator listens for SMPP (default 127.0.0.1:2775)",
    )
    serve.add_argument(
        "--simulator-http",
        metavar="PORT",
        type=int,
        help="HTTP port of the bundled simulator's API (default 8025)",
    )
    serve.add_argument(
        "--simulator-tls-cert",
        metavar="FILE",
        help="the bundled simulator speaks SMPP over TLS with this certificate (and the gateway"
        " binds to it over TLS)",
    )
    serve.add_argument("--simulator-tls-key", metavar="FILE")
    serve.add_argument(
        "--simulator-tls-ca",
        metavar="FILE",
        help="the CA the gateway trusts for the simulator (default: its certificate itself)",
    )
    serve.add_argument(
        "--lab",
        action="store_true",
        help="allow the bundled simulator and /phone on a non-loopback address (a lab network)",
    )
    serve.add_argument(
        "--workers", metavar="N", help="worker processes sharing Redis + the database, or auto"
    )
    serve.add_argument("--worker", help=argparse.SUPPRESS)  # I/N: started by the supervisor
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)

    sim = sub.add_parser("simulator", help="run the SMSC simulator alone")
    sim.add_argument("--account", action="append", metavar="ID:PASSWORD")
    sim.add_argument("--smpp", metavar="HOST:PORT", default="127.0.0.1:2775")
    sim.add_argument(
        "--http",
        metavar="HOST:PORT",
        default="127.0.0.1:8025",
        help="HTTP address (with --replay: the running simulator's, default 127.0.0.1:8025)",
    )
    sim.add_argument(
        "--trace-size",
        metavar="N",
        type=int,
        default=2000,
        help="PDUs kept for GET /api/v1/pdus (0: no trace; default 2000)",
    )
    sim.add_argument(
        "--replay",
        metavar="FILE",
        help="replay a conversation script against the running simulator and server;"
        " exit 0 when every expectation holds, 1 with a diff",
    )
    sim.add_argument(
        "--smpps", metavar="HOST:PORT", help="also SMPP over TLS here (needs --tls-cert/--tls-key)"
    )
    sim.add_argument("--tls-cert", metavar="FILE", help="PEM certificate of the --smpps listener")
    sim.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    sim.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA on --smpps (mutual TLS)",
    )

    phone = sub.add_parser("phone", help="terminal handset against the simulator")
    phone.add_argument("msisdn")
    phone.add_argument("--simulator", metavar="URL", default="http://127.0.0.1:8025")

    db = sub.add_parser("db", help="database migrations and seed data")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("--database-url", metavar="URL")
    seed = dbsub.add_parser("seed", help="seed data")
    seed.add_argument("--demo", action="store_true", help="the demo subscribers")
    seed.add_argument("--subscribers", type=int, default=0, metavar="N")
    seed.add_argument("--database-url", metavar="URL")
    check = sub.add_parser(
        "check", help="validate the configuration, reach the database, Redis and each SMSC once"
    )
    check.add_argument(
        "--smsc", action="append", metavar="URL", help="smpp://ID:PASSWORD@HOST:PORT (repeatable)"
    )
    check.add_argument("--database-url", metavar="URL")
    check.add_argument("--redis-url", metavar="URL")
    check.add_argument("--config", metavar="FILE", help="TOML file with settings")
    check.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per check (default 5)"
    )
    check.add_argument("--lab", action="store_true", help="as serve --lab")
    return parser


def _host_port(value: str, key: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{key}: expected HOST:PORT such as 127.0.0.1:2775, got {value!r}")
    return host, int(port)


def _serve_settings(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {
        "smsc": args.smsc,
        "http": args.http,
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "simulator_http_port": args.simulator_http,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "simulator_tls_cert": args.simulator_tls_cert,
        "simulator_tls_key": args.simulator_tls_key,
        "simulator_tls_ca": args.simulator_tls_ca,
        "lab": True if args.lab else None,
    }
    if args.simulator_smpp:
        host, port = _host_port(args.simulator_smpp, "--simulator-smpp")
        flags["simulator_smpp_host"], flags["simulator_smpp_port"] = host, port
    return load_settings(flags, config_file=args.config)


async def _serve(settings: Settings, worker: WorkerSlot | None = None, fd: int = -1) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.components import COMPONENTS, HTTP_LIMITS
    from gateway.web.limits import raise_nofile_limit, start_http
    from gateway.workers import watch_supervisor

    https = _https_context(settings)
    app = create_app(settings, worker=worker)
    limits = app[HTTP_LIMITS]
    limits.fit_descriptors(raise_nofile_limit())
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=settings.http_idle_timeout,
    )
    listener = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    orphan: asyncio.Task[None] | None = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        where: dict[str, Any] = {"host": settings.http_host, "port": settings.http_port}
        if worker is not None:  # the supervisor's socket, shared by every worker
            where = {"host": None, "port": None, "sock": socket.socket(fileno=fd)}
            orphan = loop.create_task(watch_supervisor(worker, stop))
        try:
            listener = await start_http(
                runner,
                limits,
                **where,
                ssl=https,
                # a TLS handshake is bounded like the request head that follows it
                ssl_handshake_timeout=settings.http_header_timeout if https else None,
            )
        except OSError as exc:
            raise ConfigError(
                f"IDEA24_HTTP: cannot listen on {settings.http_host}:{settings.http_port}"
                f" ({exc.strerror}); is another idea24 running? choose another with --http"
            ) from exc
        if worker is None or worker.index == 0:
            _print_banner(settings, app[COMPONENTS])
        settle_heap()
        await stop.wait()
        who = "" if worker is None else f" worker {worker.index}"
        print(
            f"idea24{who}: shutting down (finishing turns, draining the outbox, unbinding)",
            flush=True,
        )
    finally:
        if orphan is not None:
            orphan.cancel()
        if listener is not None:
            listener.close()
        await runner.cleanup()
    return 0


#: Young collections after this many net allocations (Python's default: 700); the older two as
#: usual. A turn allocates a few hundred objects that die by reference counting; at the default
#: the collector ran several times per turn over whatever was young.
GC_THRESHOLDS = (50_000, 20, 10)


def settle_heap() -> None:
    """Once everything has started: what exists now (modules, pools, compiled statements, the
    catalogue) lives as long as the process, so the collector stops scanning it (``gc.freeze``),
    and young collections run less often. Measured on PAKIET, SQLite + memory, 100 in flight:
    p99 turn latency 166-171 ms → 57-60 ms (full collections walking the whole heap were the
    tail), server CPU per turn level or lower."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _https_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS listener's context (``--tls-cert``/``--tls-key``), or None for plain HTTP."""
    if not settings.https:
        return None
    from gateway.tls import reloading_server_context

    return reloading_server_context(
        settings.tls_cert, settings.tls_key, named="IDEA24_TLS_CERT / IDEA24_TLS_KEY"
    )


def _print_banner(settings: Settings, components: Any) -> None:
    scheme = "https" if settings.https else "http"
    base = f"{scheme}://{settings.http_host}:{settings.http_port}"
    lines = [f"idea24 {__version__} serving", f"  HTTP      {base}  (API, /healthz, /metrics)"]
    if components.simulator is not None:
        host, port = components.simulator.smpp_address
        smpp = "smpps" if settings.simulator_tls_cert else "smpp"
        lines.append(f"  SMSC      bundled simulator, SMPP {smpp}://{host}:{port}")
        if components.simulator.http_url:
            lines.append(f"  Simulator {components.simulator.http_url}/api/v1")
    for profile in settings.smsc:
        lines.append(
            f"  SMSC      {profile.scheme}://{profile.system_id}@{profile.host}:{profile.port}"
        )
    lines.append(f"  Database  {_safe_db(settings.database_url)}")
    lines.append(f"  Sessions  {'Redis' if settings.redis_url else 'in memory'}")
    lines.append(f"  SMS to {settings.short_code}, USSD {settings.ussd_code}")
    if components.simulator is not None:
        lines.append("Try it:")
        lines.append(f"  open {base}/phone")
        lines.append("  idea24 phone 48600000001")
    if components.simulator is not None and lab_exposure(settings):
        lines.append(
            "LAB MODE (--lab): the simulator and /phone are reachable from other machines;"
            " anyone there can read every SMS (passwords included) and act for any number"
        )
    if settings.dev_secrets:
        lines.append(
            "Warning: development API key / secret key in use; set IDEA24_API_KEY and"
            " IDEA24_SECRET_KEY in production"
        )
    print("\n".join(lines), flush=True)


def _safe_db(url: str) -> str:
    from gateway.settings import mask_url

    return mask_url(url)


def _db_url(args: argparse.Namespace) -> str:
    return str(args.database_url or os.environ.get("IDEA24_DATABASE_URL") or DEFAULT_DATABASE_URL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args, argv)
    except ConfigError as exc:
        print(f"idea24: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run_fast(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on uvloop's event loop when it is installed (``pip install
    idea24[fast]``: a faster SMPP send path), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _simulator_tls(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, tuple[str, int]]:
    """``idea24 simulator --smpps HOST:PORT --tls-cert F --tls-key F [--tls-client-ca F]``."""
    if not args.smpps:
        if args.tls_cert or args.tls_key or args.tls_client_ca:
            raise ConfigError("--tls-cert/--tls-key/--tls-client-ca: set --smpps HOST:PORT too")
        return None, ("127.0.0.1", 0)
    address = _host_port(args.smpps, "--smpps")
    if not args.tls_cert or not args.tls_key:
        raise ConfigError("--smpps: needs --tls-cert FILE and --tls-key FILE")
    from gateway.tls import reloading_server_context

    named = "--tls-cert/--tls-key/--tls-client-ca"
    context = reloading_server_context(
        args.tls_cert, args.tls_key, args.tls_client_ca or "", named=named
    )
    return context, address


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    from gateway.logs import setup_logging

    if args.command == "serve":
        from gateway import workers

        settings = _serve_settings(args)
        slot = (
            None if args.worker is None else workers.WorkerSlot.parse(args.worker, args.listen_fd)
        )
        count = workers.worker_count(args.workers)
        workers.check_workers(settings, 1 if slot else count)
        setup_logging(settings.log_level, settings.log_format)
        try:
            if slot is None and count > 1:
                from backend.clock import SystemClock
                from gateway.app import prepare_database

                return workers.supervise(
                    settings,
                    count,
                    [*argv, "--workers", "1"],
                    lambda: prepare_database(settings, SystemClock()),
                )
            return _run_fast(_serve(settings, slot, args.listen_fd or -1))
        except OSError as exc:
            raise ConfigError(f"cannot start: {exc}") from exc
    if args.command == "simulator":
        from simulator.controller import parse_accounts, run_simulator

        http_host, http_port = _host_port(args.http, "--http")
        if args.replay:
            from simulator.replay import run_replay

            url = f"http://{http_host}:{http_port}"
            return asyncio.run(run_replay(args.replay, url, load_settings().short_code))
        setup_logging(os.environ.get("IDEA24_LOG_LEVEL", "INFO"))
        if args.trace_size < 0:
            raise ConfigError(f"--trace-size: 0 or more PDUs, got {args.trace_size}")
        smpp_host, smpp_port = _host_port(args.smpp, "--smpp")
        tls, tls_address = _simulator_tls(args)
        with contextlib.suppress(KeyboardInterrupt):
            _run_fast(
                run_simulator(
                    parse_accounts(args.account),
                    smpp_host,
                    smpp_port,
                    http_host,
                    http_port,
                    trace_size=args.trace_size,
                    tls=tls,
                    tls_address=tls_address,
                )
            )
        return 0
    if args.command == "phone":
        from simulator.handset import run_phone

        with contextlib.suppress(KeyboardInterrupt):
            return int(asyncio.run(run_phone(args.msisdn, args.simulator)) or 0)
        return 0
    if args.command == "db":
        from backend.manage import seed, upgrade

        url = _db_url(args)
        if args.db_command == "upgrade":
            asyncio.run(upgrade(url))
            print("database at the newest migration")
            return 0
        if args.db_command == "seed":
            secret = load_settings().secret_key
            report = asyncio.run(seed(url, secret, demo=args.demo, subscribers=args.subscribers))
            print(f"seeded: {report.demo_rows} demo rows, {report.synthetic} synthetic subscribers")
            return 0
        parser.parse_args(["db", "--help"])
        return 2
    if args.command == "check":
        from gateway.check import run as run_check

        return run_check(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
