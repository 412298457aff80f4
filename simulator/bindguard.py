"""Bind brute force, per peer address: after a few wrong binds, refuse that address for a while.

An SMSC on a public address gets password guessing on its SMPP port. The guard counts failed
binds (wrong system_id or password) per peer host in a sliding window; at ``max_failures`` the
host is blocked for ``block`` seconds, during which every bind from it is refused with
ESME_RBINDFAIL without looking at the credentials, so guessing gains nothing. A good bind clears
the host's count. Memory is bounded: at most ``max_peers`` hosts are remembered (oldest dropped).
Clocks are passed in, so the guard is plain data and tests need no sleeping.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.smpp.pdu import Pdu, Status

log = logging.getLogger("simulator.smsc")

DEFAULT_MAX_FAILURES = 5
DEFAULT_WINDOW = 60.0
DEFAULT_BLOCK = 300.0
DEFAULT_MAX_PEERS = 10_000


@dataclass
class _Peer:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class BindGuard:
    """Counts failed binds per peer host and blocks a host that fails too often."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window: float = DEFAULT_WINDOW,
        block: float = DEFAULT_BLOCK,
        max_peers: int = DEFAULT_MAX_PEERS,
    ) -> None:
        if max_failures < 1 or window <= 0 or block < 0 or max_peers < 1:
            raise ValueError("max_failures, window and max_peers must be positive, block >= 0")
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self.max_peers = max_peers
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        #: Binds refused because the host was blocked (their credentials were not checked).
        self.refused = 0

    def blocked(self, host: str, now: float) -> bool:
        """True while ``host`` is blocked; counts the refusal."""
        peer = self._peers.get(host)
        if peer is None or peer.blocked_until <= now:
            return False
        self.refused += 1
        return True

    def failed(self, host: str, now: float) -> bool:
        """Record a wrong bind from ``host``; True if this one got the host blocked."""
        peer = self._peers.get(host)
        if peer is None:
            peer = self._peers[host] = _Peer()
            if len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(host)
        window_start = now - self.window
        while peer.failures and peer.failures[0] <= window_start:
            peer.failures.popleft()
        peer.failures.append(now)
        if len(peer.failures) >= self.max_failures:
            peer.failures.clear()
            peer.blocked_until = now + self.block
            return True
        return False

    def succeeded(self, host: str) -> None:
        """A good bind: forget the host's failures."""
        self._peers.pop(host, None)

    def failures(self, host: str) -> int:
        peer = self._peers.get(host)
        return len(peer.failures) if peer is not None else 0

    def __len__(self) -> int:
        return len(self._peers)


def peer_host(peer: str) -> str:
    """``"127.0.0.1:40222"`` → ``"127.0.0.1"`` (IPv6 ``"::1:40222"`` → ``"::1"``)."""
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


def check_credentials(
    guard: BindGuard, accounts: Mapping[str, str], pdu: Pdu, peer: str, now: float
) -> int | None:
    """None when ``pdu`` (a bind) names an account with its password; else the status to refuse
    it with. Wrong credentials are counted per peer address and logged without the password; a
    blocked address gets ESME_RBINDFAIL without its credentials being looked at."""
    host = peer_host(peer)
    if guard.blocked(host, now):
        log.debug("bind refused: address blocked", extra={"peer": peer})
        return int(Status.ESME_RBINDFAIL)
    system_id = str(pdu.get("system_id", ""))
    expected = accounts.get(system_id)
    given = str(pdu.get("password", "")).encode("latin-1")  # compare_digest: no str > 0x7f
    if expected is not None and secrets.compare_digest(given, expected.encode("latin-1")):
        guard.succeeded(host)
        return None
    status = Status.ESME_RINVSYSID if expected is None else Status.ESME_RINVPASWD
    blocked = guard.failed(host, now)
    # A wrong system_id may be a password typed in the wrong field: not shown.
    shown = system_id if expected is not None else f"<unknown, {len(system_id)} chars>"
    log.warning(
        "bind refused: wrong credentials",
        extra={
            "peer": peer,
            # A wrong system_id may be a password typed in the wrong field: not shown.
            "system_id": shown,
            "status": status.name,
            "address_blocked": blocked,
        },
    )
    return int(status)


def in_address_range(address_range: str, destination: str) -> bool:
    """Whether a receiver bound with ``address_range`` (a regular expression, as SMSCs take it)
    serves ``destination``; a range that is not a valid expression refuses nothing."""
    try:
        return re.fullmatch(address_range, destination) is not None
    except re.error:
        return True
