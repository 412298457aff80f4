"""The web handset at ``/phone`` of a real ``idea24 serve``, in headless Chromium.

At a mobile and a desktop width: a USSD walk through ``*100#`` (usage, home, Trzy i Ja /
Przyjaciel, back, the temporary password that ends the session) and an SMS confirmation flow
(``WLACZ ROAMING`` → fee quote live over SSE → ``TAK`` + subscriber code → activated).
Screenshots land in tests/artifacts/ for a human to look at.

Answers in one USSD session are all different on purpose: the inbound de-duplication currently
drops a repeated answer (same text, same its_session_info) as a redelivery.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.serve import PASSWORD_RE, Served, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = [(390, 844), (1280, 800)]


async def open_phone(browser: Browser, s: Served, width: int, height: int, msisdn: str) -> Page:
    """The page with ``msisdn`` picked from the number list and its event stream online."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(f"{s.url}/phone")
    await expect(page.locator("#status")).to_have_text("online")
    await expect(page.locator("#numbers option")).to_have_count(3)
    await page.fill("#msisdn", msisdn)  # the input event picks a listed number
    await page.locator("#msisdn").dispatch_event("change")
    await expect(page.locator("#status")).to_have_text("online")
    return page


async def answer(page: Page, text: str) -> None:
    await page.fill("#ussd-answer", text)
    await page.click("#ussd-send")


async def ussd_walk(page: Page, s: Served, shot: Path) -> None:
    screen = page.locator("#ussd-text")
    dialog = page.locator("#ussd")
    await page.click("#dial")
    await expect(dialog).to_be_visible()
    await expect(screen).to_contain_text("1 Konto")
    await expect(screen).to_contain_text("9 Kontakt z BOK")
    await expect(page.locator("#ussd-answer")).to_be_focused()

    await answer(page, "2")
    await expect(screen).to_contain_text(re.compile(r"minuty \d+/120"))
    await expect(screen).to_contain_text("00 Menu")
    await page.screenshot(path=str(shot))

    await answer(page, "00")
    await expect(screen).to_contain_text("1 Konto")
    await answer(page, "4")
    await expect(screen).to_contain_text("1 Trzy i Ja")
    await expect(screen).to_contain_text("2 Przyjaciel")
    await answer(page, "0")
    await expect(screen).to_contain_text("7 Haslo do Idea24")

    await answer(page, "7")  # a final screen: the temporary password, no answer field
    await expect(screen).to_contain_text("Haslo tymczasowe")
    await expect(page.locator("#ussd-ok")).to_be_visible()
    await expect(page.locator("#ussd-answer")).to_be_hidden()
    assert await dialog.get_attribute("data-state") == "end"
    found = PASSWORD_RE.search(await screen.inner_text())
    assert found, await screen.inner_text()
    await page.click("#ussd-ok")
    await expect(dialog).to_be_hidden()

    # What the page showed is what the server issued: the password is valid, once.
    status, body = await s.api(
        "/api/v1/passwords/verify", {"msisdn": "48600000001", "password": found.group(1)}
    )
    assert (status, body) == (200, {"valid": True})


async def sms_confirmation(page: Page, code: str, shot: Path) -> None:
    mo, mt = page.locator(".msg.mo"), page.locator(".msg.mt")
    await page.fill("#text", "WLACZ ROAMING")
    await page.click("#send")
    await expect(mo.last).to_contain_text("WLACZ ROAMING")
    # Three parts in UCS-2, one transliterated: the default policy (auto) transliterates it.
    await expect(mt.last).to_contain_text("Wlaczenie uslugi Roaming: oplata")
    await expect(mt.last).to_contain_text("TAK 123456")
    assert await mt.count() == 1

    await page.fill("#text", f"TAK {code}")
    await page.keyboard.press("Enter")  # Enter sends too
    await expect(mo.last).to_contain_text(f"TAK {code}")
    await expect(mt.last).to_contain_text("Usługa Roaming włączona")
    await expect(mt).to_have_count(2)
    await expect(page.locator("#text")).to_have_value("")
    await expect(page.locator("#error")).to_be_hidden()
    # Times in the page's language (pl: 24-hour clock), not the browser's default locale.
    await expect(mt.last.locator(".meta")).to_have_text(
        re.compile(r"^od 2424 · \d{2}:\d{2}:\d{2}( · .*)?$")
    )
    await page.screenshot(path=str(shot))


async def fits_width(page: Page) -> None:
    """Nothing scrolls sideways and the compose bar is on screen."""
    overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, overflow
    await expect(page.locator("#send")).to_be_in_viewport()
    await expect(page.locator("#dial")).to_be_in_viewport()


async def test_phone_page_against_serve(tmp_path: Path, chromium: Browser) -> None:
    """Both widths against one server (its start and stop dominate the time).

    Each width walks USSD as 48600000001 (a new session each time) and confirms an SMS
    activation as a different subscriber, so nothing is repeated within the dedup window.
    """
    sms_as = {(390, 844): ("48600000003", "333333"), (1280, 800): ("48600000002", "222222")}
    async with serve(tmp_path) as s:
        for width, height in WIDTHS:
            size = f"{width}x{height}"
            page = await open_phone(chromium, s, width, height, "48600000001")
            await fits_width(page)
            await ussd_walk(page, s, ARTIFACTS / f"phone-serve-ussd-{size}.png")
            assert await page.locator(".msg").count() == 0  # USSD is not in the SMS thread
            await page.context.close()

            msisdn, code = sms_as[(width, height)]
            page = await open_phone(chromium, s, width, height, msisdn)
            await sms_confirmation(page, code, ARTIFACTS / f"phone-serve-sms-{size}.png")
            await fits_width(page)
            await page.context.close()
