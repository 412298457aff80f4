"""Who may call ``POST /api/v1/ussd``: the aggregator's key, and optionally its addresses.

An aggregator acts for any subscriber it names, so its endpoint takes a key like the portal API:
``X-API-Key`` (or ``?key=`` for aggregators that cannot set a header), compared in constant time
with ``IDEA24_USSD_API_KEY`` when set, else with ``IDEA24_API_KEY``. ``IDEA24_USSD_ALLOW`` (CIDR
networks, comma-separated) additionally limits the peers that may call it.

Without configuration (both keys left at the published development value) the endpoint answers
loopback peers only: that key proves nothing, and loopback keeps ``curl`` on the server's own
box working for development. The peer is the TCP peer; ``X-Forwarded-For`` is not trusted.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from gateway.web.protocols import HttpSettings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UssdAccess:
    key: bytes
    allow: tuple[IpNetwork, ...]
    loopback_only: bool

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> UssdAccess:
        return cls(
            key=settings.ussd_key.encode(),
            allow=tuple(ipaddress.ip_network(n, strict=False) for n in settings.ussd_allow),
            loopback_only=settings.ussd_key_published,
        )

    def check(self, given: str, peer: str | None) -> Refusal | None:
        """None when the caller may run a turn; else what to answer (nothing has run)."""
        if not hmac.compare_digest(given.encode(), self.key):
            return Refusal(401, "unauthorized", "missing or wrong X-API-Key (or ?key=)")
        address = _address(peer)
        if self.loopback_only and (address is None or not address.is_loopback):
            return Refusal(
                403,
                "loopback_only",
                "USSD over HTTP answers loopback only until IDEA24_USSD_API_KEY or"
                " IDEA24_API_KEY is set",
            )
        if self.allow and (address is None or not any(address in n for n in self.allow)):
            return Refusal(403, "not_allowed", "this address is not in IDEA24_USSD_ALLOW")
        return None


def _address(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not peer:
        return None
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
