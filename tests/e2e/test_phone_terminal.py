"""``idea24 phone MSISDN`` as a subprocess against a real ``idea24 serve``: SMS and USSD by typing.

Lines go to its stdin one at a time, each after the previous reply is on its stdout; closing
stdin ends it with exit code 0. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.e2e.serve import PASSWORD_RE, Served, idea24_command, serve

pytestmark = pytest.mark.slow

MSISDN = "48600000001"


class Terminal:
    """The handset's stdout as it grows, and its stdin one line at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output += line.decode("utf-8", errors="replace")
            self._changed.set()

    async def shows(self, pattern: str, *, after: int = 0, within: float = 10.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) appears in the output past offset ``after``."""
        try:
            async with asyncio.timeout(within):
                while not (found := re.compile(pattern).search(self.output, after)):
                    self._changed.clear()
                    if self._reader.done():
                        break
                    await self._changed.wait()
        except TimeoutError:
            found = None
        assert found, f"no {pattern!r} within {within}s; the terminal shows:\n{self.output}"
        return found

    async def type(self, line: str, expect: str, within: float = 10.0) -> re.Match[str]:
        """Type a line and wait for ``expect`` to appear in what is printed after it."""
        assert self.proc.stdin is not None
        mark = len(self.output)
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.shows(expect, after=mark, within=within)

    async def close(self, within: float = 10.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code


@asynccontextmanager
async def phone(s: Served, msisdn: str) -> AsyncIterator[Terminal]:
    proc = await asyncio.create_subprocess_exec(
        *idea24_command(),
        "phone",
        msisdn,
        "--simulator",
        s.sim_url,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    terminal = Terminal(proc)
    try:
        yield terminal
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        terminal._reader.cancel()


async def receipts_in(s: Served, msisdn: str, within: float = 10.0) -> None:
    """Every SMS to the handset has its delivery receipt (so its update event was sent)."""
    for _ in range(int(within / 0.05)):
        messages = await s.mt(msisdn)
        if all(m.get("receipt") for m in messages):
            return
        await asyncio.sleep(0.05)  # the simulator's API has no "receipt arrived" to await
    raise AssertionError(f"receipts missing after {within}s: {messages}")


async def test_terminal_handset_against_serve(tmp_path: Path) -> None:
    async with serve(tmp_path) as s, phone(s, MSISDN) as t:
        await t.shows(f"Phone {MSISDN} on {re.escape(s.sim_url)}")

        # SMS: what was sent is echoed, the reply arrives over the event stream.
        # 75 characters: one part transliterated, two in UCS-2, so the default policy (auto)
        # sends it plain.
        await t.type("PAKIET", r"< 2424: Pakiet do .*minuty \d+/120 \(zostalo \d+\)")
        assert "> 2424: PAKIET" in t.output

        # USSD: a menu keeps the session open, each line answers it.
        await t.type("*100#", r"\[USSD\] Idea24\n1 Konto\n(.*\n)*9 Kontakt z BOK\n.*answer")
        await t.type("2", r"\[USSD\] Pakiet do .*minuty \d+/120.*\n0 Wstecz 00 Menu")
        await t.type("00", r"\[USSD\] Idea24\n1 Konto")
        await t.type("4", r"\[USSD\] Trzy i Ja / Przyjaciel\n1 Trzy i Ja\n2 Przyjaciel")
        await t.type("", r"USSD cancelled")

        # With the menu cancelled a line is an SMS again.
        await t.type("3ija", r"< 2424: .*Trzy i Ja.*601 234 567")

        # A shortcut lands in the branch; a final screen closes the session.
        await t.type("*100*2#", r"\[USSD\] Pakiet do .*\n0 Wstecz 00 Menu\n.*answer")
        await t.type("0", r"\[USSD\] Idea24\n1 Konto")
        found = await t.type("7", r"\[USSD\] Haslo tymczasowe do Idea24 on-line: \S+")
        mark = found.start()
        password = PASSWORD_RE.search(found.group(0))
        assert password, found.group(0)
        await t.type("Pakiet", r"> 2424: Pakiet\n")  # no menu open: an SMS, not an answer
        await t.shows(r"< 2424: Pakiet do ", after=mark)
        assert "answer" not in t.output[mark:]

        # The password on the screen is the one the server issued.
        status, body = await s.api(
            "/api/v1/passwords/verify", {"msisdn": MSISDN, "password": password.group(1)}
        )
        assert (status, body) == (200, {"valid": True})

        await receipts_in(s, MSISDN)
        assert await t.close() == 0

    # Each SMS reply is printed once, even though its delivery receipt updates it later.
    assert t.output.count("< 2424: Pakiet do") == 2, t.output
    assert t.output.count("< 2424: ") == 3, t.output


async def test_piped_input_waits_for_the_replies(tmp_path: Path) -> None:
    """``printf 'PAKIET\\nINFO\\n' | idea24 phone 48600000001``: the input ends at once, the
    handset still prints each reply before it exits."""
    async with serve(tmp_path) as s:
        proc = await asyncio.create_subprocess_exec(
            *idea24_command(),
            "phone",
            MSISDN,
            "--simulator",
            s.sim_url,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(30):
                out, _ = await proc.communicate(b"PAKIET\nINFO\n")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert re.search(r"< 2424: Pakiet do .*minuty \d+/120", text), text
    assert re.search(r"< 2424: Nr 600 000 001, konto ", text), text
