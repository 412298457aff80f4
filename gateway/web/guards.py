"""Limits across all subscribers: what no per-number limit sees.

- :class:`PasswordCap`: portal password requests per minute for the whole operator. Each one
  sends an SMS, so a run over many numbers (each under its own limit) costs the operator money
  ("SMS pumping"); past the cap the API answers 429 with ``Retry-After``.
- :class:`CodeGuard`: wrong subscriber codes per minute across subscribers. Many in a short
  time is a guessing run over many numbers (3 tries each before a lockout). Every wrong code
  is counted (``idea24_wrong_codes_total{origin}``); past the limit the run is reported
  (``idea24_code_guessing_detected_total``) and code checks arriving over HTTP (the USSD
  aggregator) are refused for the rest of the window without reaching the subscriber's
  failure count (``idea24_code_checks_slowed_total``), so the run slows down and cannot lock
  out numbers wholesale. Checks from the handset over SMPP — the SIM proves who sends them —
  are never refused by this guard.
- :class:`GuardedBackend` also tells the backend which lockout a code check counts in: over
  HTTP the ``aggregator`` one, kept apart from the handset's, so wrong codes sent through the
  aggregator can lock the aggregator path but never the subscriber's own SMS and SMPP USSD.

Both count in the dialog store (``DialogStore.hit``), so on Redis every process shares them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backend.errors import RateLimited, WrongCode
from backend.records import CodeChannel
from fsm import keys
from fsm.store import DialogStore
from gateway.web.protocols import GuardMetrics

WINDOW = 60.0


class GlobalRateLimited(RateLimited):
    """Refused by a limit across all subscribers (not the number's own)."""


class PasswordCap:
    def __init__(self, store: DialogStore, per_minute: int, metrics: GuardMetrics) -> None:
        self.store = store
        self.per_minute = per_minute
        self.metrics = metrics

    async def take(self) -> None:
        """Count one request; raises :class:`GlobalRateLimited` past the cap."""
        if await self.store.hit(keys.global_rate("password_requests"), WINDOW) > self.per_minute:
            self.metrics.password_requests_refused.labels("global").inc()
            raise GlobalRateLimited(WINDOW)


class CodeGuard:
    def __init__(
        self,
        store: DialogStore,
        limit: int,
        metrics: GuardMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.limit = limit
        self.metrics = metrics
        self._clock = clock
        self._alarm_until = 0.0

    @property
    def alarmed(self) -> bool:
        """A guessing run was seen within the last window (by this process's counts)."""
        return self._clock() < self._alarm_until

    async def wrong_code(self, origin: str) -> None:
        self.metrics.wrong_codes.labels(origin).inc()
        if await self.store.hit(keys.global_rate("wrong_codes"), WINDOW) > self.limit:
            self.metrics.code_guessing.inc()
            self._alarm_until = self._clock() + WINDOW

    def admit(self, origin: str) -> None:
        """Raises :class:`GlobalRateLimited` for a check from ``http`` during a guessing run."""
        if origin != "smpp" and self.alarmed:
            self.metrics.code_checks_slowed.inc()
            raise GlobalRateLimited(max(1.0, self._alarm_until - self._clock()))


class GuardedBackend:
    """The backend as the dialogs of one origin see it: code checks pass :class:`CodeGuard`
    and count in the origin's lockout (``code_channel``: "aggregator" for ``http``, else
    "handset").

    Everything else is the backend's own method (looked up once, no extra call per use)."""

    def __init__(self, backend: Any, guard: CodeGuard, origin: str) -> None:
        self._backend = backend
        self._guard = guard
        self._origin = origin
        self._code_channel: CodeChannel = "aggregator" if origin == "http" else "handset"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def _guarded(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("subscriber_code") is None and call.__name__ != "check_subscriber_code":
            return await call(*args, **kwargs)  # no code in this call
        kwargs["code_channel"] = self._code_channel
        self._guard.admit(self._origin)
        try:
            return await call(*args, **kwargs)
        except WrongCode:
            await self._guard.wrong_code(self._origin)
            raise

    async def check_subscriber_code(self, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(self._backend.check_subscriber_code, *args, **kwargs)

    async def code_gate(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["code_channel"] = self._code_channel
        return await self._backend.code_gate(*args, **kwargs)

    async def activate(self, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(self._backend.activate, *args, **kwargs)

    async def deactivate(self, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(self._backend.deactivate, *args, **kwargs)

    async def change_address(self, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(self._backend.change_address, *args, **kwargs)

    async def request_payment_change(self, *args: Any, **kwargs: Any) -> Any:
        return await self._guarded(self._backend.request_payment_change, *args, **kwargs)
