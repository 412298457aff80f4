"""Key building: the only place that knows how Redis keys and channels look, for every use —
dialog sessions, turn locks and rate counters (:mod:`fsm.store`), the outbox stream and its
per-subscriber marks (:mod:`gateway.outbox.redis`), the receipt relay's channel
(:mod:`gateway.outbox.receipt_relay`).

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


#: The outbox stream's consumer group (every sender of every process reads through it).
OUTBOX_GROUP = "senders"


def outbox_stream(prefix: str) -> str:
    """The outbox stream of a deployment."""
    return f"{prefix}:outbox"


def outbox_failed(prefix: str) -> str:
    """The list of items given up on."""
    return f"{prefix}:outbox:failed"


# The outbox tags whatever address a reply is for, as it was queued (no check: a reply to an
# address the SMSC took is still delivered).
def outbox_seq(prefix: str, msisdn: str) -> str:
    """A subscriber's reply sequence counter."""
    return f"{prefix}:outbox:seq:{{{msisdn}}}"


def outbox_done(prefix: str, msisdn: str) -> str:
    """The sequence number up to which a subscriber's replies have left."""
    return f"{prefix}:outbox:done:{{{msisdn}}}"


def outbox_accepted(prefix: str, entry: str) -> str:
    """An outbox entry's retry state (not before, parts accepted, attempts)."""
    return f"{prefix}:outbox:acc:{entry}"


def receipts_channel(prefix: str, db: int) -> str:
    """The channel every process of a deployment relays unmatched delivery receipts on;
    channels are server-wide, so the database number is part of it."""
    return f"{prefix}:receipts:{db}"
