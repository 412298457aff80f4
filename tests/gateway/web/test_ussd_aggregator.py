"""USSD from an HTTP aggregator on the real dialogs and backend: the network's equivalent of a dial,
the subscriber's language, and the same text policy as USSD over SMPP."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from backend.api import Backend
from backend.models import Subscriber
from dialogs.catalogue import texts
from fsm.runtime import Runtime
from fsm.store import MemoryStore
from gateway.app import catalogue_text, password_sms
from gateway.metrics import Metrics
from gateway.outbox.base import OutboxItem
from gateway.outbox.sender import build_parts
from gateway.settings import Settings, SmscProfile
from gateway.sms.text import Policy, ussd_text
from gateway.web.http import DEPS, HttpDeps, add_routes, api_errors
from gateway.web.portal import Portal
from tests.dialogs.conftest import backend, runtime, template_db  # noqa: F401 - fixtures
from tests.fsm.conftest import case  # noqa: F401 - the two-store fixture

KEY = "aggregator-test-key"


def _client(runtime: Runtime, backend: Backend, policy: Policy) -> web.Application:  # noqa: F811
    portal = Portal(
        backend,
        runtime,
        None,
        password_sms,
        "2424",
        catalogue=catalogue_text,
        policy=policy,
        language="pl",
    )
    app = web.Application(middlewares=[api_errors])
    app[DEPS] = HttpDeps(Settings(api_key=KEY), Metrics(), portal, portal)
    add_routes(app)
    return app


async def test_a_first_request_carrying_answers_is_the_network_dial(
    runtime: Runtime,  # noqa: F811
    backend: Backend,  # noqa: F811
) -> None:
    async with TestClient(TestServer(_client(runtime, backend, "ucs2"))) as client:

        async def send(session: str, text: str, phone: str = "48600000001") -> tuple[int, str]:
            form = {"sessionId": session, "phoneNumber": phone, "serviceCode": "*100#"}
            r = await client.post(f"/api/v1/ussd?key={KEY}", data={**form, "text": text})
            return r.status, await r.text()

        # *100*3*1# dialled: the aggregator's first request already carries "3*1".
        assert await send("a1", "3*1") == (
            200,
            "CON Moje usługi:\n1 Trzy i Ja (wł.)\n2 MMS (wł.)\n0 Wstecz 00 Menu",
        )
        status, screen = await send("a1", "3*1*2")
        assert status == 200 and screen.startswith("CON MMS: włączony, 0,00 zł/mies.")
        # A dial string as the text is a dial.
        status, screen = await send("a2", "*100*2#")
        assert screen.startswith("CON Pakiet do ")
        # Not a subscriber: refused at the dial, in Polish.
        assert await send("a3", "", phone="48699999999") == (
            200,
            "END Ten numer nie jest abonentem Idea. Zadzwoń na *22.",
        )
        # Bad requests are told in the operator's language too, not an English reason.
        assert await send("a4", "", phone="12") == (
            400,
            "END Ten numer nie jest abonentem Idea. Zadzwoń na *22.",
        )
        r = await client.post(
            "/api/v1/ussd", data={"phoneNumber": "48600000001"}, headers={"X-API-Key": KEY}
        )
        assert (r.status, await r.text()) == (400, "END " + texts("pl")("notice.error"))


async def test_an_english_subscriber_gets_english_screens_and_refusals(
    runtime: Runtime,  # noqa: F811
    backend: Backend,  # noqa: F811
) -> None:
    async with backend.sessionmaker.begin() as session:
        await session.execute(
            update(Subscriber).where(Subscriber.msisdn == "48600000002").values(language="en")
        )
    portal = Portal(
        backend, runtime, None, password_sms, "2424", catalogue=catalogue_text, language="pl"
    )
    screen, end = await portal.ussd_turn("48600000002", "e1", "*100#")
    assert screen.startswith("Idea24\n1 Account\n") and not end
    assert await portal.ussd_refusal("notice.error", "48600000002") == texts("en")("notice.error")
    assert await portal.ussd_refusal("notice.error", "48600000001") == texts("pl")("notice.error")


@pytest.mark.parametrize(
    ("policy", "menu", "short"),
    [
        ("ucs2", "Hasło do Idea24", "Sesja wygasła. Wybierz *100# ponownie."),
        ("transliterate", "Haslo do Idea24", "Sesja wygasla. Wybierz *100# ponownie."),
        # auto: a screen keeps its letters while it fits one UCS-2 USSD string (80 characters)
        ("auto", "Haslo do Idea24", "Sesja wygasła. Wybierz *100# ponownie."),
    ],
)
async def test_aggregator_screens_follow_the_text_policy(
    runtime: Runtime,  # noqa: F811
    backend: Backend,  # noqa: F811
    policy: Policy,
    menu: str,
    short: str,
) -> None:
    portal = Portal(
        backend, runtime, None, password_sms, "2424", catalogue=catalogue_text, policy=policy
    )
    root, _ = await portal.ussd_turn("48600000001", f"p-{policy}", "*100#")
    assert f"\n7 {menu}\n" in root
    # An answer to a session that is gone (no record, nothing to replay).
    expired, end = await portal.ussd_turn("48600000003", f"gone-{policy}", "Zażółć")
    assert (expired, end) == (short, True)


@pytest.mark.parametrize(
    ("policy", "text", "coding", "sent"),
    [
        ("ucs2", "Hasło do Idea24 " * 6, 8, "Hasło do Idea24 " * 6),
        ("transliterate", "Sesja wygasła.", 0, "Sesja wygasla."),
        ("auto", "Sesja wygasła.", 8, "Sesja wygasła."),
        ("auto", "Hasło do Idea24 " * 6, 0, "Haslo do Idea24 " * 6),
    ],
)
def test_smpp_ussd_follows_the_same_policy(
    policy: Policy, text: str, coding: int, sent: str
) -> None:
    """The screen an SMPP bind submits is the one the aggregator is given (``ussd_text``)."""
    item = OutboxItem("1", "48600000001", text, {"channel": "ussd", "end": False}, 0, 0)
    [params] = build_parts(SmscProfile("id", "pw", "127.0.0.1", 2775), item, policy)
    data = params["short_message"] or params["message_payload"]
    assert params["data_coding"] == coding
    assert data.decode("utf-16-be" if coding == 8 else "ascii") == sent == ussd_text(text, policy)


async def test_a_turn_with_nothing_to_say_is_never_an_empty_end(
    backend: Backend,  # noqa: F811
) -> None:
    silent = Runtime(MemoryStore(), {}, backend)  # no USSD dialog: the turn has no reply
    portal = Portal(backend, silent, None, password_sms, "2424", catalogue=catalogue_text)
    assert await portal.ussd_turn("48600000001", "x1", "*100#") == (
        texts("pl")("notice.error"),
        True,
    )
