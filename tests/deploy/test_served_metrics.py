"""A real ``idea24 serve`` against what the deploy files expect of it: every metric and label the
dashboard and the alert rules name is in its /metrics (which promtool finds clean), and the
health checks of the Containerfile and the compose file pass against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.conftest import DEPLOY, ROOT, run
from tests.deploy.deploy_files import compose, containerfile_healthcheck
from tests.deploy.promql_names import Exported, alert_expressions, dashboard_queries, problems
from tests.e2e.serve import Served, serve

pytestmark = pytest.mark.slow


async def scrape(served: Served) -> str:
    async with served.http.get(f"{served.url}/metrics") as r:
        assert r.status == 200
        return await r.text()


async def drive(served: Served) -> str:
    """A few turns on both channels, then the scrape once the SMS replies' receipts are in."""
    assert "Pakiet" in await served.sms("48600000001", "PAKIET")
    assert "Pakiet" in await served.sms("48600000002", "pakiet")
    menu = await served.ussd("48600000001", "*100#")
    assert not menu["end"]
    await served.ussd("48600000001", "2")
    for _ in range(200):
        text = await scrape(served)
        if 'idea24_receipts_total{state="delivered"}' in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"no delivery receipt counted:\n{text}")


def health_command(argv: list[str], port: int) -> int:
    """Run a container health check's command here (``python`` is this interpreter), with the
    server's HTTP address as the container would have it."""
    cmd = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    env = {**os.environ, "IDEA24_HTTP": f"0.0.0.0:{port}"}
    return subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False).returncode


async def test_deploy_files_match_what_the_server_serves(tmp_path: Path, promtool: str) -> None:
    async with serve(tmp_path) as served:
        text = await drive(served)
        port = int(served.url.rpartition(":")[2])
        compose_check = compose()["services"]["idea24"]["healthcheck"]["test"]
        assert compose_check[0] == "CMD"
        for argv in (containerfile_healthcheck(), compose_check[1:]):
            assert await asyncio.to_thread(health_command, argv, port) == 0, argv
            assert await asyncio.to_thread(health_command, argv, free_port()) != 0, argv

    code, out = run(promtool, "check", "metrics", stdin=text)
    assert code == 0, out

    exported = Exported.from_scrape(text)
    found = []
    dashboards = sorted((DEPLOY / "grafana").glob("*.json"))
    assert dashboards
    for path in dashboards:
        for where, expr, legend in dashboard_queries(json.loads(path.read_text())):
            found += [f"{path.name} {where}: {p}" for p in problems(expr, exported, legend)]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for where, expr in alert_expressions(rules):
        found += [f"alerts.yml {where}: {p}" for p in problems(expr, exported)]
    assert not found, "\n".join(found)
    assert ROOT.joinpath("Containerfile").exists()
