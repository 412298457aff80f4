"""Key building: the only place that knows how store keys look.

The MSISDN sits in a ``{hash tag}`` so every key of one subscriber maps to one Redis Cluster slot.
"""

from __future__ import annotations

from fsm import constants

_UNUSABLE = frozenset("{}: ")


def _tag(msisdn: str) -> str:
    if not msisdn or not _UNUSABLE.isdisjoint(msisdn):
        raise ValueError(f"not a usable MSISDN for a key: {msisdn!r}")
    return "{" + msisdn + "}"


def session(prefix: str, msisdn: str, dialog: str) -> str:
    return f"{prefix}:{constants.SESSION}:{_tag(msisdn)}:{dialog}"


def lock(prefix: str, msisdn: str) -> str:
    return f"{prefix}:{constants.LOCK}:{_tag(msisdn)}"


def rate(msisdn: str, scope: str = "turn") -> str:
    """The logical key of a subscriber's rate counter for ``DialogStore.hit``."""
    return f"{constants.RATE}:{_tag(msisdn)}:{scope}"


def global_rate(scope: str) -> str:
    """The logical key of a counter across all subscribers (``password_requests``,
    ``wrong_codes``) for ``DialogStore.hit``."""
    return f"{constants.RATE}:global:{scope}"


def prefixed(prefix: str, logical: str) -> str:
    return f"{prefix}:{logical}"
