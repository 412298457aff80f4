"""What the HTTP side reads of the settings and the metrics, which the composition root
(:mod:`gateway.app`) hands it: :class:`gateway.settings.Settings` and
:class:`gateway.metrics.Metrics` have these and more."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter


class HttpSettings(Protocol):
    @property
    def api_key(self) -> str: ...
    @property
    def ussd_code(self) -> str: ...
    @property
    def http_host(self) -> str: ...
    @property
    def http_port(self) -> int: ...
    @property
    def ussd_allow(self) -> tuple[str, ...]: ...
    @property
    def ussd_key(self) -> str: ...
    @property
    def ussd_key_published(self) -> bool: ...


class GuardMetrics(Protocol):
    #: portal password requests refused by a cap, by scope
    @property
    def password_requests_refused(self) -> Counter: ...
    #: wrong subscriber codes, by origin (smpp, http)
    @property
    def wrong_codes(self) -> Counter: ...
    #: wrong codes beyond the guess limit across all subscribers: a guessing run
    @property
    def code_guessing(self) -> Counter: ...
    #: code checks over HTTP refused, not tried, during a guessing run
    @property
    def code_checks_slowed(self) -> Counter: ...


class HttpMetrics(GuardMetrics, Protocol):
    #: subscriber messages in, by channel and outcome
    @property
    def messages_in(self) -> Counter: ...
    #: HTTP requests, by route and status
    @property
    def http_requests(self) -> Counter: ...
    #: USSD-over-HTTP calls refused (key, address), by reason
    @property
    def ussd_http_refused(self) -> Counter: ...
    #: the Content-Type of :meth:`render`'s exposition
    @property
    def content_type(self) -> str: ...
    def render(self) -> bytes: ...
