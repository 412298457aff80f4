"""Prometheus metrics, one registry per application (no process-global collectors).

Two kinds: what the request path counts as it goes (messages in, turns, turn time, HTTP) is a
prometheus_client child incremented in place; what the SMPP side already keeps as plain
attributes on its hot path (per-bind state and counters, receipts by state and relayed between
processes, duplicates) is read once per scrape from the bind pool's ``snapshot()`` by
:class:`PoolMetrics`, so no turn pays a second count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fsm.runtime import Channel, Notice

#: What :class:`PoolMetrics` reads: ``gateway.binds.BindPool.snapshot``.
Snapshot = Callable[[], Mapping[str, Any]]
#: ``idea24_receipts_relayed_total`` labels and the tracker counter behind each.
RELAYED = (
    ("out", "published", "relayed_out"),
    ("out", "dropped", "relay_dropped"),
    ("in", "matched", "relayed_matched"),
    ("in", "unmatched", "relayed_unmatched"),
)


class PoolMetrics:
    """The bind pool's counters as metric families, read at scrape time (a custom collector).

    Nothing is exported before :meth:`watch` is given the pool (start-up) or after it is
    given None (shutdown)."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None

    def watch(self, snapshot: Snapshot | None) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        if self._snapshot is None:
            return
        snap = self._snapshot()
        binds: Mapping[str, Mapping[str, Any]] = snap["binds"]
        up = GaugeMetricFamily("idea24_smpp_bind_up", "1 when the bind is bound", labels=["bind"])
        window = GaugeMetricFamily(
            "idea24_smpp_window_in_use", "Requests awaiting the SMSC's answer", labels=["bind"]
        )
        throttled = CounterMetricFamily(
            "idea24_smpp_throttled",
            "Throttling answers from the SMSC (ESME_RTHROTTLED, ESME_RMSGQFUL)",
            labels=["bind"],
        )
        timeouts = CounterMetricFamily(
            "idea24_smpp_timeouts", "SMPP requests the SMSC did not answer in time", labels=["bind"]
        )
        connects = CounterMetricFamily(
            "idea24_smpp_connects", "SMPP connections made (reconnects included)", labels=["bind"]
        )
        tls_failures = CounterMetricFamily(
            "idea24_smpp_tls_failures",
            "SMPP-over-TLS connections that failed, by reason: certificate (the SMSC's did not"
            " verify), refused (the SMSC refused ours with an alert), closed (closed after the"
            " handshake with no bind answer), files (our cert/key/CA unusable), handshake"
            " (anything else)",
            labels=["bind", "reason"],
        )
        out = CounterMetricFamily(
            "idea24_messages_out",
            "Outbound messages by bind and status: sent (every part accepted by the SMSC),"
            " retried (a temporary refusal, sent again later), failed (refused for good)",
            labels=["bind", "status"],
        )
        for name, b in binds.items():
            up.add_metric([name], 1.0 if b["bound"] else 0.0)
            window.add_metric([name], float(b["in_flight"]))
            throttled.add_metric([name], float(b["pushbacks"]))
            timeouts.add_metric([name], float(b["timeouts"]))
            connects.add_metric([name], float(b["connects"]))
            for reason, count in sorted(b.get("tls_failures", {}).items()):
                tls_failures.add_metric([name, reason], float(count))
            for status in ("sent", "retried", "failed"):
                out.add_metric([name, status], float(b[status]))
        yield from (up, window, throttled, timeouts, connects, tls_failures, out)
        inbound, delivery = snap["inbound"], snap["delivery"]
        yield CounterMetricFamily(
            "idea24_duplicate_mo",
            "Redelivered MO messages ignored (the SMSC's copies)",
            value=float(inbound["duplicates"]),
        )
        crashes = CounterMetricFamily(
            "idea24_task_crashes",
            "Background tasks that raised, by task: loops restarted, send tasks' items released",
            labels=["task"],
        )
        for task, count in sorted(snap.get("task_crashes", {}).items()):
            crashes.add_metric([task], float(count))
        yield crashes
        evicted = CounterMetricFamily(
            "idea24_mo_long_messages_evicted",
            "Long MO messages given up before all parts came, for a limit: sender_limit (the"
            " sender had too many or too large waiting), evicted (all senders together: the"
            " last guard)",
            labels=["reason"],
        )
        for reason in ("sender_limit", "evicted"):
            evicted.add_metric([reason], float(inbound.get("evictions", {}).get(reason, 0)))
        yield evicted
        by_state = CounterMetricFamily(
            "idea24_receipts",
            "Delivery receipts received, by the state they report (one per message part)",
            labels=["state"],
        )
        for state, count in sorted(delivery["receipt_states"].items()):
            by_state.add_metric([state.lower()], float(count))
        yield by_state
        outcomes = CounterMetricFamily(
            "idea24_message_outcomes",
            "Messages sent by this process that reached a final state (every part delivered,"
            " or one failed), receipts relayed from other processes included",
            labels=["outcome"],
        )
        outcomes.add_metric(["delivered"], float(delivery["delivered"]))
        outcomes.add_metric(["failed"], float(delivery["failed"]))
        yield outcomes
        relayed = CounterMetricFamily(
            "idea24_receipts_relayed",
            "Delivery receipts relayed between processes over Redis: out published or dropped"
            " (Redis down), in matched a message of this process or not",
            labels=["direction", "outcome"],
        )
        for direction, outcome, key in RELAYED:
            relayed.add_metric([direction, outcome], float(delivery[key]))
        yield relayed
        yield GaugeMetricFamily(
            "idea24_receipts_parked",
            "Receipts matching nothing sent here yet (early, or another process's message)",
            value=float(delivery["parked"]),
        )


class OutboxCounters:
    """What the outbox counts of a store that lost its data (``RedisOutbox.lost`` and
    ``.recreated``), read at scrape time; nothing for an outbox that keeps no such count."""

    def __init__(self) -> None:
        self._outbox: object | None = None

    def watch(self, outbox: object | None) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[Metric]:
        if self._outbox is None or not hasattr(self._outbox, "lost"):
            return
        yield CounterMetricFamily(
            "idea24_outbox_lost",
            "Replies that were waiting in the outbox when its store lost them (a Redis that"
            " came back empty): never sent",
            value=float(getattr(self._outbox, "lost", 0)),
        )
        yield CounterMetricFamily(
            "idea24_outbox_group_recreated",
            "Times the outbox's stream and consumer group were created again after the store"
            " lost them",
            value=float(getattr(self._outbox, "recreated", 0)),
        )


class HttpLimitCounters:
    """The HTTP side's connection bounds (``gateway.web.limits.ConnectionLimits``), read at
    scrape time."""

    def __init__(self) -> None:
        self._limits: Any = None

    def watch(self, limits: Any) -> None:
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        if self._limits is None:
            return
        yield GaugeMetricFamily(
            "idea24_http_connections_open",
            "Open HTTP connections (through idea24 serve's listener)",
            value=float(self._limits.open),
        )
        closed = CounterMetricFamily(
            "idea24_http_connections_closed",
            "HTTP connections closed by a bound: refused (past IDEA24_HTTP_MAX_CONNECTIONS,"
            " answered 503) or slow_headers (no complete request within"
            " IDEA24_HTTP_HEADER_TIMEOUT)",
            labels=["reason"],
        )
        closed.add_metric(["refused"], float(self._limits.refused))
        closed.add_metric(["slow_headers"], float(self._limits.timed_out))
        yield closed


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: ``idea24_turns_total`` outcomes: the dialog answered, said nothing, or the runtime answered
#: with a notice instead (``fsm.runtime.Notice``: error, busy, rate_limited).
TURN_OUTCOMES = ("replied", "silent", *get_args(Notice))


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages_in = Counter(
            "idea24_messages_in_total",
            "Inbound messages by channel and outcome",
            ["channel", "status"],
            registry=r,
        )
        self.turns = Counter(
            "idea24_turns_total",
            "Dialog turns by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.turn_seconds = Histogram(
            "idea24_turn_seconds",
            "Dialog turn latency",
            ["channel"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        # Every channel's turn series exist from the start, at 0: a rate() or an alert on
        # outcome="error" then sees the first error (a series born at 1 shows no increase),
        # and the dashboards and alert rules name only series the server exports.
        for channel in get_args(Channel):
            self.messages_in.labels(channel, "ok")
            self.turn_seconds.labels(channel)
            for outcome in TURN_OUTCOMES:
                self.turns.labels(channel, outcome)
        self.outbox_depth = Gauge(
            "idea24_outbox_depth", "Messages waiting in the outbox", registry=r
        )
        self.outbox_stalled = Gauge(
            "idea24_outbox_stalled_seconds",
            "How long replies have waited in the outbox with none leaving (0: empty or moving);"
            " past IDEA24_OUTBOX_STALL /healthz says 503",
            registry=r,
        )
        self.http_requests = Counter(
            "idea24_http_requests_total",
            "HTTP API requests",
            ["route", "status"],
            registry=r,
        )
        self.ussd_http_refused = Counter(
            "idea24_ussd_http_refused_total",
            "USSD-over-HTTP requests refused before any turn ran: unauthorized (no or wrong"
            " key), loopback_only (no key configured), not_allowed (address outside the list)",
            ["reason"],
            registry=r,
        )
        self.password_requests_refused = Counter(
            "idea24_password_requests_refused_total",
            "Portal password requests refused with 429: number (its own limit) or global (the"
            " cap across all numbers, IDEA24_PASSWORD_RATE per minute)",
            ["scope"],
            registry=r,
        )
        self.wrong_codes = Counter(
            "idea24_wrong_codes_total",
            "Wrong subscriber codes, by origin: smpp (from the handset) or http (aggregator)",
            ["origin"],
            registry=r,
        )
        # Each refusal's series at 0 from the start, as the turns' are: an alert on
        # scope="global" or reason="unauthorized" then sees the first one.
        for reason in ("unauthorized", "loopback_only", "not_allowed"):
            self.ussd_http_refused.labels(reason)
        for scope in ("number", "global"):
            self.password_requests_refused.labels(scope)
        for origin in ("smpp", "http"):
            self.wrong_codes.labels(origin)
        self.code_guessing = Counter(
            "idea24_code_guessing_detected_total",
            "Wrong subscriber codes beyond IDEA24_CODE_GUESS_LIMIT per minute across all"
            " subscribers: a guessing run is under way",
            registry=r,
        )
        self.code_checks_slowed = Counter(
            "idea24_code_checks_slowed_total",
            "Code checks over HTTP refused (not tried) during a guessing run",
            registry=r,
        )
        self.loop_lag = Histogram(
            "idea24_event_loop_lag_seconds",
            "How late the event loop woke a probe that sleeps 0.25 s (a blocked or busy loop)",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

        #: the bind pool's own counters, read per scrape (see :class:`PoolMetrics`)
        self.pool = PoolMetrics()
        r.register(self.pool)
        #: the outbox's own loss counters, read per scrape
        self.outbox = OutboxCounters()
        r.register(self.outbox)
        self.http_limits = HttpLimitCounters()
        r.register(self.http_limits)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPE

    def render(self) -> bytes:
        return generate_latest(self.registry)
