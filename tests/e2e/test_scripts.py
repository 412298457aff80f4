"""Acceptance: every recorded conversation under ``tests/scripts/`` replays green against a real
``idea24 serve``, through the command a developer runs (``idea24 simulator --replay FILE``).

One server for all scripts (its start dominates the time): each script talks as its own
subscriber or leaves the account as it found it, so the order does not matter.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.e2e.serve import idea24_command, serve

pytestmark = pytest.mark.slow

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.json"))


async def test_recorded_scripts_replay_green(tmp_path: Path) -> None:
    assert SCRIPTS, "no scripts under tests/scripts"
    failures = []
    async with serve(tmp_path) as s:
        address = s.sim_url.removeprefix("http://")
        for path in SCRIPTS:
            done = await asyncio.to_thread(
                subprocess.run,
                [*idea24_command(), "simulator", "--replay", str(path), "--http", address],
                capture_output=True,
                text=True,
                timeout=90,
            )
            if done.returncode != 0 or not done.stdout.rstrip().endswith("PASS"):
                failures.append(f"{path.name}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        if failures:
            pytest.fail("\n".join(failures) + "\nserver log:\n" + s.log()[-3000:])
