"""Conversations on the real backend (SQLite seeded with the demo subscribers) and both stores.

The database is migrated and seeded once per test session into a template file; each test gets a
copy, so tests can change data freely and still run fast.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.api import Backend
from backend.db import open_backend
from backend.manage import seed
from dialogs import build_dialogs
from fsm.runtime import Inbound, Runtime
from tests.fsm.conftest import StoreCase, case  # noqa: F401 - the two-store fixture

SECRET = "test-secret-key"


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    asyncio.run(seed(f"sqlite+aiosqlite:///{path}", SECRET, demo=True))
    return path


@pytest.fixture
async def backend(template_db: Path, tmp_path: Path) -> AsyncIterator[Backend]:
    db = tmp_path / "idea24.db"
    shutil.copy(template_db, db)
    async with open_backend(f"sqlite+aiosqlite:///{db}", SECRET) as b:
        yield b


class Phone:
    """A subscriber's handset talking to the runtime: SMS text in, reply texts out; USSD dialogs."""

    def __init__(self, runtime: Runtime, msisdn: str = "48600000001") -> None:
        self.runtime = runtime
        self.msisdn = msisdn
        self.session = 0
        self.ended = True

    async def sms(self, text: str) -> str:
        replies = await self.runtime.turn(Inbound(self.msisdn, "sms", text))
        assert replies and all(r.end for r in replies)
        return "\n".join(r.text for r in replies)

    async def dial(self, code: str = "*100#") -> str:
        self.session += 1
        return await self.ussd(code)

    async def ussd(self, text: str, session: str | None = None) -> str:
        sid = session or f"s{self.session}"
        replies = await self.runtime.turn(Inbound(self.msisdn, "ussd", text, session_id=sid))
        assert len(replies) == 1, replies
        self.ended = replies[0].end
        return replies[0].text


@pytest.fixture
def runtime(case: StoreCase, backend: Backend) -> Runtime:  # noqa: F811
    return Runtime(case.store, build_dialogs(), backend, rate_limit=1000)


@pytest.fixture
def phone(runtime: Runtime) -> Phone:
    return Phone(runtime)


def phone_for(runtime: Runtime, msisdn: str) -> Phone:
    return Phone(runtime, msisdn)
