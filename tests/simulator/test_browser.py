"""The web handset in real headless Chromium: type an SMS, see the reply, dial *100#, answer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
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


@pytest.fixture
async def esme(sim: SimulatorController) -> AsyncIterator[EsmeThread]:
    thread = EsmeThread(sim.smpp_address)
    await asyncio.to_thread(thread.start)
    yield thread
    await asyncio.to_thread(thread.stop)


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)], ids=["mobile", "desktop"])
async def test_web_handset_sms_and_ussd(
    sim: SimulatorController, esme: EsmeThread, width: int, height: int
) -> None:
    if not HAVE_CHROMIUM:
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=20_000)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(8_000)
            await page.goto(f"{sim.http_url}/phone")
            await expect(page.locator("#status")).to_have_text("online")
            await page.fill("#msisdn", "48600000003")
            await page.locator("#msisdn").dispatch_event("change")

            await page.fill("#text", "Ile mam minut?")
            await page.click("#send")
            await expect(page.locator(".msg.mo").last).to_contain_text("Ile mam minut?")
            await expect(page.locator(".msg.mt").last).to_contain_text("Echo: Ile mam minut?")

            await page.click("#dial")
            dialog = page.locator("#ussd")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#ussd-text")).to_contain_text("1 Konto")
            await page.fill("#ussd-answer", "2")
            await page.click("#ussd-send")
            await expect(page.locator("#ussd-text")).to_have_text("Wybrano 2")
            await expect(page.locator("#ussd-ok")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / f"phone-{width}x{height}.png"))
            await page.click("#ussd-ok")
            await expect(dialog).to_be_hidden()

            await page.click("#dial")  # Cancel ends an open session
            await expect(page.locator("#ussd-text")).to_contain_text("1 Konto")
            await page.click("#ussd-cancel")
            await expect(dialog).to_be_hidden()
        finally:
            await browser.close()
    kinds = [(m.direction, m.kind, m.text) for m in sim.messages("48600000003")]
    assert ("mt", "sms", "Echo: Ile mam minut?") in kinds
    assert ("mt", "ussd", "Wybrano 2") in kinds
    assert sim.smsc.ussd.get("48600000003") is None
