"""Every Redis key prefix and store default in one place (arq's ``constants.py``).

A key is ``<prefix>:<kind>:{<msisdn>}[:<rest>]``: ``prefix`` separates deployments and test runs,
``kind`` is one of the names below, and the MSISDN in braces is the Redis Cluster hash tag, so all
keys of one subscriber live in one slot and a Lua script may touch several of them.
"""

from __future__ import annotations

from typing import Final

DEFAULT_PREFIX: Final = "idea24"

#: A subscriber's dialog record (state + data), one per dialog ("sms", "ussd").
SESSION: Final = "dlg"
#: The per-subscriber turn lock.
LOCK: Final = "lock"
#: Rate-limit counters (fixed window).
RATE: Final = "rate"

#: How long a turn may hold the lock before another process may take it over (seconds).
LOCK_TTL: Final = 30.0
#: How long a turn waits for the lock before giving up (seconds).
LOCK_WAIT: Final = 15.0
#: Redis connections one process keeps for the store (more turns queue for a free one).
REDIS_CONNECTIONS: Final = 64
