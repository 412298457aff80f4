"""Prometheus metrics, one registry per application (no process-global collectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
        self.messages_out = Counter(
            "idea24_messages_out_total",
            "Outbound messages (parts) by channel and status",
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
        self.receipts = Counter(
            "idea24_receipts_total",
            "Delivery receipts by final state",
            ["state"],
            registry=r,
        )
        self.receipts_relayed = Counter(
            "idea24_receipts_relayed_total",
            "Delivery receipts relayed between processes over Redis: out published or dropped"
            " (Redis down), in matched a message of this process or not",
            ["direction", "outcome"],
            registry=r,
        )
        self.throttled = Counter(
            "idea24_smpp_throttled_total",
            "Throttling answers from the SMSC",
            ["bind"],
            registry=r,
        )
        self.window_in_use = Gauge(
            "idea24_smpp_window_in_use",
            "Outstanding SMPP requests",
            ["bind"],
            registry=r,
        )
        self.bind_up = Gauge(
            "idea24_smpp_bind_up", "1 when the bind is bound", ["bind"], registry=r
        )
        self.outbox_depth = Gauge(
            "idea24_outbox_depth", "Messages waiting in the outbox", registry=r
        )
        self.http_requests = Counter(
            "idea24_http_requests_total",
            "HTTP API requests",
            ["route", "status"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "idea24_event_loop_lag_seconds",
            "How late the event loop woke a probe that sleeps 0.25 s (a blocked or busy loop)",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.duplicates = Counter(
            "idea24_duplicate_mo_total",
            "Redelivered MO messages ignored",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
