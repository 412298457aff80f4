"""Starting and stopping the simulator: a controller for tests (like aiosmtpd's) and the command.

``async with SimulatorController() as sim`` starts the SMPP server on a free port (and the HTTP
API when ``http_port`` is given), yields the addresses, and on exit unbinds every ESME, ends the
event streams and closes both listeners, so a test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from backend.errors import ConfigError
from simulator.faults import Faults, SimulatorHandler
from simulator.http import create_simulator_app
from simulator.smsc import DEFAULT_ACCOUNTS, Smsc
from simulator.store import HandsetMessage
from simulator.trace import DEFAULT_SIZE as DEFAULT_TRACE_SIZE
from simulator.ussd import UssdReply


class SimulatorController:
    """The simulator as an async context manager; extra keywords go to :class:`Smsc`
    (``window``, ``enquire_link_interval``, ``inactivity_timeout``, ``response_timeout``,
    ``ussd_timeout``).

    ``tls`` (a server context) with ``tls_port`` adds an SMPP-over-TLS listener on
    ``tls_host`` (default ``host``); ``tls_only`` leaves out the clear-text one.
    """

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int | None = None,
        *,
        http_host: str | None = None,
        handler: SimulatorHandler | None = None,
        tls: ssl.SSLContext | None = None,
        tls_host: str | None = None,
        tls_port: int = 0,
        tls_only: bool = False,
        **options: Any,
    ) -> None:
        self.smsc = Smsc(accounts or DEFAULT_ACCOUNTS, handler=handler, **options)
        self._host = host
        self._port = port
        self._http_host = http_host or host
        self._http_port = http_port
        self._runner: web.AppRunner | None = None
        self.smpp_address: tuple[str, int] = (host, port)
        self._tls = tls
        self._tls_host = tls_host or host
        self._tls_port = tls_port
        self._tls_only = tls_only and tls is not None
        #: where SMPP over TLS listens once started (None: no TLS listener)
        self.smpps_address: tuple[str, int] | None = None
        self.http_url: str | None = None

    @property
    def faults(self) -> Faults:
        return self.smsc.faults

    @property
    def handler(self) -> SimulatorHandler:
        return self.smsc.handler

    async def __aenter__(self) -> SimulatorController:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._tls_only:
            self.smpp_address = await self.smsc.start(self._host, self._port, tls=self._tls)
            self.smpps_address = self.smpp_address
        else:
            self.smpp_address = await self.smsc.start(self._host, self._port)
        if self._tls is not None and not self._tls_only:
            try:
                self.smpps_address = await self.smsc.listen(
                    self._tls_host, self._tls_port, tls=self._tls
                )
            except OSError:
                await self.smsc.stop()
                raise
        if self._http_port is None:
            return
        runner = web.AppRunner(create_simulator_app(self.smsc), shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._http_host, self._http_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            await self.smsc.stop()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.http_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.smsc.stop()

    # -- the test API (docs/internals.md "Simulator") --------------------------------------------

    async def inject_mo(
        self, source: str, destination: str, text: str, data_coding: int | None = None, **kw: Any
    ) -> HandsetMessage:
        return await self.smsc.inject_mo(source, destination, text, data_coding, **kw)

    async def dial(self, msisdn: str, text: str, wait: float = 10.0) -> str:
        """Dial or answer USSD; the text of the network's next screen."""
        return (await self.smsc.dial(msisdn, text, wait)).text

    async def ussd(self, msisdn: str, text: str, wait: float = 10.0) -> UssdReply:
        """Like :meth:`dial`, with whether the session ended and the ussd_service_op."""
        return await self.smsc.dial(msisdn, text, wait)

    def messages(self, msisdn: str | None = None) -> list[HandsetMessage]:
        return self.smsc.messages(msisdn)

    async def wait_messages(
        self, msisdn: str, count: int = 1, *, direction: str = "mt", wait: float = 5.0
    ) -> list[HandsetMessage]:
        return await self.smsc.wait_messages(msisdn, count, direction=direction, wait=wait)

    def drop_all(self) -> int:
        return self.smsc.drop_all()


def parse_accounts(values: Iterable[str] | None) -> dict[str, str]:
    """``["ID:PASSWORD", ...]`` (the ``--account`` flags) → ``{ID: PASSWORD}``; default idea24."""
    accounts: dict[str, str] = {}
    for value in values or ():
        system_id, sep, password = value.partition(":")
        if not sep or not system_id:
            raise ConfigError(
                f"--account: expected ID:PASSWORD such as idea24:idea24, got {value!r}"
            )
        if len(system_id) > 15 or len(password) > 8:
            raise ConfigError(
                f"--account: SMPP allows a system_id of 15 and a password of 8 characters at most,"
                f" got {len(system_id)} and {len(password)} for {system_id!r}"
            )
        accounts[system_id] = password
    return accounts or dict(DEFAULT_ACCOUNTS)


async def run_simulator(
    accounts: Mapping[str, str] | Iterable[str] | None = None,
    smpp_host: str = "127.0.0.1",
    smpp_port: int = 2775,
    http_host: str = "127.0.0.1",
    http_port: int = 8025,
    *,
    tls: ssl.SSLContext | None = None,
    tls_address: tuple[str, int] = ("127.0.0.1", 3550),
    ready: asyncio.Event | None = None,
    trace_size: int = DEFAULT_TRACE_SIZE,
) -> None:
    """``idea24 simulator``: serve until cancelled (Ctrl-C), printing the addresses; with a
    server context ``tls``, SMPP over TLS on ``tls_address`` too (``--smpps``)."""
    if accounts is None or not isinstance(accounts, Mapping):
        accounts = parse_accounts(accounts)
    controller = SimulatorController(
        accounts,
        smpp_host,
        smpp_port,
        http_port,
        http_host=http_host,
        tls=tls,
        tls_host=tls_address[0],
        tls_port=tls_address[1],
        trace_size=trace_size,
    )
    async with controller as sim:
        host, port = sim.smpp_address
        print(f"SMPP   smpp://{host}:{port}  accounts: {', '.join(sorted(accounts))}", flush=True)
        if sim.smpps_address is not None:
            tls_host, tls_port = sim.smpps_address
            mutual = tls is not None and tls.verify_mode == ssl.CERT_REQUIRED
            print(
                f"SMPPS  smpps://{tls_host}:{tls_port}"
                + ("  (client certificates required)" if mutual else ""),
                flush=True,
            )
        print(
            f"HTTP   {sim.http_url}/api/v1  (mo, ussd, messages, events, pdus, script, replay,"
            " faults)",
            flush=True,
        )
        print(f"Phone  {sim.http_url}/phone", flush=True)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
