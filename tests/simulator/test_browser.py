"""The web handset in real headless Chromium: type an SMS, see the reply, dial *100#, answer."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from simulator.controller import SimulatorController
from tests.conftest import unavailable
from tests.simulator.peer import EsmeThread

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)], ids=["mobile", "desktop"])
async def test_web_handset_sms_ussd_trace_and_replay(
    sim: SimulatorController, esme: EsmeThread, width: int, height: int
) -> None:
    """Against the echo ESME: two handsets, an SMS, a USSD call from the keypad, the PDU pane,
    a recording replayed green."""
    if not HAVE_CHROMIUM:
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=20_000)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(8_000)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(f"{sim.http_url}/phone")
            await expect(page.locator("#status")).to_have_text("online")
            await page.click('#demo .chip[data-msisdn="48600000003"]')
            await expect(page.locator(".handset")).to_have_count(2)
            if await page.locator("#pdus").is_hidden():  # folded at phone width
                await page.click("#pdus-toggle")
            await page.click("#record")

            phone = page.locator('.handset[data-msisdn="48600000003"]')
            await phone.locator("textarea").fill("Ile mam minut?")
            await phone.locator(".send").click()
            await expect(phone.locator(".msg.mo").last).to_contain_text("Ile mam minut?")
            await expect(phone.locator(".msg.mt").last).to_contain_text("Echo: Ile mam minut?")

            await phone.locator(".tab-dialer").click()
            await phone.locator(".display").type("*100#")  # the keyboard works as the keypad
            await phone.locator(".display").press("Enter")
            await expect(phone.locator(".ussd")).to_be_visible()
            await expect(phone.locator(".ussd-text")).to_contain_text("1 Konto")
            await phone.locator(".ussd-answer").fill("2")
            await phone.locator(".ussd-send").click()
            await expect(phone.locator(".ussd-text")).to_have_text("Wybrano 2")
            await expect(phone.locator(".ussd-ok")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / f"phone-{width}x{height}.png"))
            await phone.locator(".ussd-ok").click()
            await expect(phone.locator(".ussd")).to_be_hidden()

            bind = page.locator("#pdu-bind option", has_text=re.compile(r"^#\d+ idea24 trx "))
            bind_id = await bind.get_attribute("value")
            assert bind_id
            await page.select_option("#pdu-bind", bind_id)
            other_binds = page.locator(f'#pdu-list .pdu:visible:not([data-bind="{bind_id}"])')
            await expect(other_binds).to_have_count(0)
            await page.select_option("#pdu-number", "48600000003")
            ops = page.locator("#pdu-list .pdu[data-ussd-op]:visible")
            await expect(ops).to_have_count(4)
            assert [await o.get_attribute("data-ussd-op") for o in await ops.all()] == [
                "1",
                "2",
                "18",
                "17",
            ]

            await page.click("#record")  # stop: the script opens
            await expect(page.locator("#script")).to_be_visible()
            await expect(page.locator("#script-json")).to_contain_text('"dial": "*100#"')
            await page.click("#script-replay")
            await expect(page.locator("#script-result .total")).to_have_text("PASS: 6 kroków")
            await page.screenshot(path=str(ARTIFACTS / f"phone-replay-{width}x{height}.png"))
            await page.click("#script button[type=submit]")
            await expect(page.locator("#script")).to_be_hidden()
            # Escape cancels an open menu.
            await phone.locator(".display").type("*100#")
            await phone.locator(".display").press("Enter")
            await expect(phone.locator(".ussd-answer")).to_be_focused()
            await page.keyboard.press("Escape")
            await expect(phone.locator(".ussd")).to_be_hidden()
            await expect(phone.locator(".display")).to_be_focused()

            # Everything the page loaded came from the simulator itself.
            assert requested
            outside = [u for u in requested if not u.startswith((sim.http_url, "data:"))]
            assert outside == []
        finally:
            await browser.close()
    kinds = [(m.direction, m.kind, m.text) for m in sim.messages("48600000003")]
    assert kinds.count(("mt", "sms", "Echo: Ile mam minut?")) == 2  # recorded, then replayed
    assert kinds.count(("mt", "ussd", "Wybrano 2")) == 2
    assert sim.smsc.ussd.get("48600000003") is None  # the cancelled one too
