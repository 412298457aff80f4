"""What the running server is made of, and the typed keys it sits under in the Application.

``gateway/app.py`` fills a :class:`Components` as its start-up contexts run; the HTTP side, the
health checks and ``idea24 serve`` read it through :data:`COMPONENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from backend.api import Backend
from backend.clock import Clock, SystemClock
from fsm.runtime import Runtime
from fsm.store import DialogStore
from gateway.binds import BindPool
from gateway.metrics import Metrics
from gateway.outbox.base import Outbox
from gateway.outbox.watch import OutboxWatch
from gateway.router import Router
from gateway.settings import Settings
from gateway.web.limits import ConnectionLimits
from gateway.workers import WorkerSlot
from simulator.controller import SimulatorController


@dataclass
class Components:
    """What the running server is made of (filled in as the contexts start)."""

    settings: Settings
    metrics: Metrics
    #: The one clock of the domain (dates, lockouts, expiry) and of the dialog timers.
    clock: Clock = field(default_factory=SystemClock)
    simulator: SimulatorController | None = None
    backend: Backend | None = None
    store: DialogStore | None = None
    runtime: Runtime | None = None
    #: Turns from the USSD aggregator (HTTP): the same dialogs, code checks guarded as for HTTP.
    http_runtime: Runtime | None = None
    outbox: Outbox | None = None
    pool: BindPool | None = None
    router: Router | None = None
    outbox_watch: OutboxWatch = field(default_factory=lambda: OutboxWatch(60.0))
    #: ``idea24 serve --workers N``: which worker this process is (None: the only process)
    worker: WorkerSlot | None = None
    extra: dict[str, Any] = field(default_factory=dict)


COMPONENTS = web.AppKey("components", Components)
#: The HTTP side's connection bounds (gateway/web/limits.py); ``idea24 serve`` listens through it.
HTTP_LIMITS = web.AppKey("http_limits", ConnectionLimits)


COMPONENTS = web.AppKey("components", Components)
#: The HTTP side's connection bounds (gateway/web/limits.py); ``idea24 serve`` listens through it.
HTTP_LIMITS = web.AppKey("http_limits", ConnectionLimits)
