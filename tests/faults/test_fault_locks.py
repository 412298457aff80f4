"""Regression: a turn lock left in Redis by a process killed mid-turn does not hold its
subscriber for the lock's TTL after a restart (it answered "busy" for 15 s before)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from fsm import keys
from fsm.redis_store import RedisStore
from fsm.store import LockTimeout

pytestmark = pytest.mark.redis
MSISDN = "48700000001"


def gone_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


async def test_lock_of_a_killed_process_is_broken(redis_client: Any, redis_prefix: str) -> None:
    store = RedisStore(redis_client, redis_prefix)
    key = keys.lock(redis_prefix, MSISDN)
    await redis_client.set(key, f"{socket.gethostname()}-{gone_pid()}-deadbeef", px=30_000)
    async with store.lock(MSISDN, wait=0.5) as handle:
        assert (await redis_client.get(key)).decode() == handle.token


@pytest.mark.parametrize("holder", ["live", "other-host", "opaque"])
async def test_a_live_or_foreign_holder_is_waited_for(
    redis_client: Any, redis_prefix: str, holder: str
) -> None:
    store = RedisStore(redis_client, redis_prefix)
    key = keys.lock(redis_prefix, MSISDN)
    token = {
        "live": f"{socket.gethostname()}-{os.getppid()}-cafe",
        "other-host": f"elsewhere.invalid-{gone_pid()}-cafe",
        "opaque": "0123456789abcdef01234567",
    }[holder]
    await redis_client.set(key, token, px=30_000)
    with pytest.raises(LockTimeout):
        async with store.lock(MSISDN, wait=0.2):
            pass
    assert (await redis_client.get(key)).decode() == token
