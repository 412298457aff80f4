"""Receipts that reached the wrong process, relayed over Redis pub/sub to the one that sent.

Several ``idea24 serve`` processes on one SMSC account: the SMSC hands each receipt to any of the
account's receiving binds, so with N processes about (N-1)/N of them arrive at a process that did
not send the message. Matching stays local and free of I/O (``DeliveryTracker.receipt``): only
what matched nothing here within ``grace`` travels. Every ``interval`` one task takes
``tracker.stale(grace)`` and publishes it as one message on ``{prefix}:receipts:{db}``
(:func:`fsm.keys.receipts_channel`); another
task, subscribed there, applies the other processes' receipts with ``tracker.foreign``, which
never parks them (no match means a third process's message, or one sent before a restart).

Pub/sub is at most once: a receipt published while a process is not subscribed is lost for it,
and stale receipts taken while Redis cannot be reached are dropped and counted (nothing queues
up). Neither task is on the SMPP path; both wait Redis out with back-off. Channels are
server-wide in Redis, not per database: the database number is in the name so deployments on
different databases of one server do not hear each other.

Wire format, one JSON object per message: ``{"p": process id, "r": [[message_id, state name,
err, msisdn], ...]}`` — what a ``ReceiptEvent`` needs to be matched exactly as if it had come
here (state decides ``is_delivered`` / ``is_final``; dates and text are not carried).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fsm import constants, keys
from gateway.outbox.base import DeliveryTracker
from gateway.smpp.pdu import MessageState
from gateway.sms.events import ReceiptEvent
from gateway.sms.receipts import Receipt

log = logging.getLogger(__name__)

#: What Redis raises while it is unreachable or a connection drops: waited out, never fatal.
RELAY_ERRORS: tuple[type[Exception], ...] = (OSError, RedisError)


def relay_client(url: str, **options: Any) -> Redis:
    """A Redis client for the relay: short timeouts and few retries, so while Redis is away the
    relay drops and counts instead of holding receipts; the subscription reconnects itself."""
    settings: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    client: Redis = aioredis.from_url(url, **{**settings, **options})
    return client


def encode(process: str, events: Sequence[ReceiptEvent]) -> bytes:
    """One relay message: the process id first (so a process can skip its own unparsed)."""
    rows = [[e.message_id, e.state, e.err, e.msisdn] for e in events]
    return json.dumps({"p": process, "r": rows}, separators=(",", ":")).encode()


def decode(data: bytes | str) -> tuple[str, list[ReceiptEvent]]:
    """The sender's process id and its receipts; ValueError for anything :func:`encode` did not
    write (a peer of another version, a stray PUBLISH)."""
    try:
        message = json.loads(data)
        process = message["p"]
        rows = message["r"]
        if not isinstance(process, str) or not isinstance(rows, list):
            raise ValueError("not a relay message")
        events = []
        for message_id, state_name, err, msisdn in rows:
            if not (
                isinstance(message_id, str)
                and isinstance(msisdn, str)
                and (err is None or isinstance(err, str))
            ):
                raise ValueError("not a relay receipt")
            state = MessageState[state_name]
            receipt = Receipt(message_id, state, err)
            events.append(ReceiptEvent(message_id, state.name, err, msisdn, receipt))
    except (KeyError, TypeError) as exc:  # a missing field, a row of the wrong shape or state
        raise ValueError("not a relay message") from exc
    return process, events


class ReceiptRelay:
    """Publishes this process's stale parked receipts, applies the other processes' ones.

    ``start()`` runs both tasks; ``close()`` cancels them and publishes whatever is still parked
    (the process is going away: nothing will match it here any more). Counters are plain
    attributes; the tracker counts the receipts themselves (``relayed_out`` and so on), and
    /metrics exports those (``idea24_receipts_relayed_total``, gateway/metrics.PoolMetrics).
    """

    def __init__(
        self,
        tracker: DeliveryTracker,
        redis: Redis,
        *,
        prefix: str = constants.DEFAULT_PREFIX,
        db: int | None = None,
        interval: float = 0.5,
        grace: float = 1.0,
        poll: float = 1.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        process: str | None = None,
    ) -> None:
        self._tracker = tracker
        self._redis = redis
        if db is None:  # the client's database: channels are server-wide, databases are not
            db = int(redis.connection_pool.connection_kwargs.get("db", 0))
        self.channel = keys.receipts_channel(prefix, db)
        self.process = process or secrets.token_hex(8)
        # Our own messages come back to us: recognised by their first bytes, never parsed.
        self._own = b'{"p":' + json.dumps(self.process).encode() + b","
        self._interval = interval
        self._grace = grace
        self._poll = poll
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._publish_failing = False
        self._publish_after = 0.0  # loop time: until then stale receipts are dropped untried
        self._publish_delay = backoff_base
        self.subscriptions = 0  # successful SUBSCRIBEs (1 + resubscriptions)
        self.malformed = 0  # messages on the channel not in our format

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def wait_subscribed(self, within: float) -> bool:
        """True once subscribed (start-up, after a reconnect); False after ``within`` s."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), within)
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscribing(), name="receipt-relay-subscribe"),
            loop.create_task(self._publishing(), name="receipt-relay-publish"),
        ]

    async def close(self, flush_within: float = 1.0) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribed.clear()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(0.0), flush_within)

    async def __aenter__(self) -> ReceiptRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- out ------------------------------------------------------------------------------------

    async def _publishing(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush(self._grace)

    async def flush(self, older_than: float) -> int:
        """Publish what stayed parked here ``older_than`` s or more, as one message; how many
        receipts went out. While Redis fails they are dropped (counted), with back-off between
        tries, so the park keeps draining and nothing piles up."""
        events = self._tracker.stale(older_than)
        if not events:
            return 0
        now = asyncio.get_running_loop().time()
        if now < self._publish_after:
            self._dropped(len(events))
            return 0
        try:
            await self._redis.publish(self.channel, encode(self.process, events))
        except RELAY_ERRORS as exc:
            self._dropped(len(events))
            if not self._publish_failing:
                log.warning(
                    "receipt relay: cannot publish, receipts of other processes dropped until"
                    " Redis answers (%s: %s)",
                    type(exc).__name__,
                    exc,
                )
                self._publish_failing = True
            self._publish_after = now + self._publish_delay
            self._publish_delay = min(self._publish_delay * 2, self._backoff_cap)
            return 0
        except asyncio.CancelledError:
            self._dropped(len(events))
            raise
        if self._publish_failing:
            log.info("receipt relay: publishing again")
            self._publish_failing = False
            self._publish_delay = self._backoff_base
        self._tracker.relayed(len(events))
        return len(events)

    def _dropped(self, count: int) -> None:
        self._tracker.relayed(count, dropped=True)

    # -- in -------------------------------------------------------------------------------------

    async def _subscribing(self) -> None:
        delay = self._backoff_base
        failing = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscriptions += 1
                self._subscribed.set()
                if failing:
                    log.info("receipt relay: subscribed again")
                    failing = False
                delay = self._backoff_base
                while True:
                    message = await pubsub.get_message(timeout=self._poll)
                    if message is not None and message.get("type") == "message":
                        self.receive(message["data"])
            except RELAY_ERRORS as exc:
                if not failing:
                    log.warning(
                        "receipt relay: subscription lost, other processes' receipts missed"
                        " until it is back (%s: %s)",
                        type(exc).__name__,
                        exc,
                    )
                    failing = True
            finally:
                self._subscribed.clear()
                with contextlib.suppress(*RELAY_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_cap)

    def receive(self, data: bytes | str) -> int:
        """Apply one relay message from the channel; how many of its receipts matched here."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if raw.startswith(self._own):
            return 0
        try:
            _, events = decode(raw)
        except ValueError:
            self.malformed += 1
            if self.malformed == 1:
                log.warning("receipt relay: a message not in the relay's format ignored")
            return 0
        foreign = self._tracker.foreign  # counts matched / unmatched itself
        return sum(1 for event in events if foreign(event))
