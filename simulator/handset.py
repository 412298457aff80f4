"""``idea24 phone MSISDN``: a terminal handset talking to the simulator's HTTP API.

A line of plain text is an SMS to the short number; ``*...#`` dials USSD, and while a USSD menu is
open each line answers it (an empty line cancels). Replies are printed as they arrive: SMS from
the simulator's event stream (SSE), USSD screens from the answer to each dial. When the input
ends (Ctrl-D, or the end of a pipe: ``printf 'PAKIET\n' | idea24 phone 48600000001``) the handset
waits for a reply to each SMS it sent (up to :data:`REPLY_WAIT` seconds) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp

from simulator.ussd import is_dial_string

DEFAULT_SHORT_CODE = "2424"
#: How many printed message ids are remembered to skip their later updates (receipts).
SEEN_IDS = 1000
_STREAM = aiohttp.ClientTimeout(total=None, sock_read=None)
#: How long the handset waits, once its input ended, for the replies still on their way.
REPLY_WAIT = 15.0


class Output(Protocol):
    def write(self, text: str, /) -> Any: ...
    def flush(self) -> Any: ...


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed on the terminal (a thread reads, so the event loop stays free)."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\r\n")


class Handset:
    def __init__(
        self,
        msisdn: str,
        simulator_url: str,
        http: aiohttp.ClientSession,
        out: Output,
        short_code: str = DEFAULT_SHORT_CODE,
    ) -> None:
        self.msisdn = msisdn
        self.api = simulator_url.rstrip("/") + "/api/v1"
        self.http = http
        self.out = out
        self.short_code = short_code
        self.ussd_open = False
        self._seen: set[object] = set()
        self._seen_order: deque[object] = deque()
        self.sent = 0  # SMS sent to the short number
        self.received = 0  # SMS that reached this handset since it started
        self._arrived = asyncio.Event()

    async def replies_in(self, within: float) -> bool:
        """Wait until as many SMS came as were sent (False if ``within`` seconds pass first)."""
        try:
            async with asyncio.timeout(within):
                while self.received < self.sent:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    def first_sight(self, message_id: object) -> bool:
        """True once per message: the stream sends it again when its receipt updates it."""
        if message_id in self._seen:
            return False
        self._seen.add(message_id)
        self._seen_order.append(message_id)
        if len(self._seen_order) > SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())
        return True

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def listen(self, connected: asyncio.Event) -> None:
        """Print every SMS that reaches this handset, as the event stream delivers it."""
        url = f"{self.api}/events"
        async with self.http.get(url, params={"msisdn": self.msisdn}, timeout=_STREAM) as response:
            response.raise_for_status()
            connected.set()
            async for raw in response.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message["direction"] != "mt" or message["kind"] != "sms":
                    continue
                if self.first_sight(message["id"]):
                    self.say(f"< {message['peer']}: {message['text']}")
                    self.received += 1
                    self._arrived.set()

    async def handle(self, line: str) -> None:
        text = line.strip()
        if self.ussd_open and not text:
            async with self.http.delete(f"{self.api}/ussd", params={"msisdn": self.msisdn}):
                pass
            self.ussd_open = False
            self.say("USSD cancelled")
            return
        if not text:
            return
        if self.ussd_open or is_dial_string(text):
            await self.ussd(text)
        else:
            await self.sms(text)

    async def sms(self, text: str) -> None:
        body = {"from": self.msisdn, "to": self.short_code, "text": text}
        async with self.http.post(f"{self.api}/mo", json=body) as response:
            data = await response.json()
            if response.status != 202:
                self.say(f"! SMS not sent: {data.get('error', response.status)}")
                return
        parts = f" ({data['parts']} parts)" if data["parts"] > 1 else ""
        self.sent += 1
        self.say(f"> {self.short_code}: {text}{parts}")

    async def ussd(self, text: str) -> None:
        body = {"msisdn": self.msisdn, "text": text}
        async with self.http.post(f"{self.api}/ussd", json=body) as response:
            data = await response.json()
        if response.status != 200:
            self.ussd_open = False
            self.say(f"! USSD: {data.get('error', response.status)}")
            return
        self.ussd_open = not data["end"]
        self.say(f"[USSD] {data['text']}")
        if self.ussd_open:
            self.say("[USSD] answer (empty line cancels):")


async def run_phone(
    msisdn: str,
    simulator_url: str = "http://127.0.0.1:8025",
    *,
    lines: AsyncIterator[str] | None = None,
    out: Output | None = None,
    short_code: str = DEFAULT_SHORT_CODE,
) -> int:
    """Run the terminal handset until the input ends and the replies to it came; 1 if the
    simulator cannot be reached."""
    out = out or sys.stdout
    source = lines if lines is not None else stdin_lines()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        phone = Handset(msisdn, simulator_url, http, out, short_code)
        connected = asyncio.Event()
        listener = asyncio.create_task(phone.listen(connected))
        try:
            waiter = asyncio.create_task(connected.wait())
            try:
                await asyncio.wait(
                    [listener, waiter], timeout=5, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            if listener.done():
                listener.result()  # raises the connection error
            if not connected.is_set():
                raise TimeoutError("no event stream within 5 s")
            phone.say(
                f"Phone {msisdn} on {simulator_url}. Type an SMS, or dial *100#; Ctrl-D quits."
            )
            async for line in source:
                await phone.handle(line)
            if not await phone.replies_in(REPLY_WAIT):
                phone.say(f"! {phone.sent - phone.received} SMS unanswered after {REPLY_WAIT:g} s")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            phone.say(f"! cannot reach the simulator at {simulator_url}: {exc}")
            return 1
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, OSError):
                await listener
    return 0
