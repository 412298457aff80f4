"""The Containerfile and deploy/compose.yaml, read as a container engine would: stages, user,
ports, health checks, commands. No engine runs here, so nothing is built; the commands the files
give idea24 are parsed by idea24's own command line, and their health checks are run against a
served idea24 in tests/deploy/test_served_metrics.py."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest

from backend.errors import ConfigError
from gateway.cli import build_parser
from gateway.settings import load_settings
from tests.deploy.conftest import DEPLOY
from tests.deploy.deploy_files import compose, containerfile_healthcheck, final_stage, instructions


def test_the_image_is_built_in_two_stages_and_runs_unprivileged() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2
    build = froms[0].split()[-1]
    runtime = final_stage()
    assert any(w == "COPY" and f"--from={build}" in r for w, r in runtime), "nothing built kept"
    [user] = [rest for word, rest in runtime if word == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    [entrypoint] = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    [cmd] = [rest for word, rest in runtime if word == "CMD"]
    argv = json.loads(cmd)
    assert json.loads(entrypoint) == ["idea24"]
    build_parser().parse_args(argv)  # a command idea24 has


def test_the_image_listens_where_its_port_and_health_check_say() -> None:
    runtime = final_stage()
    env = {}
    for word, rest in runtime:
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    smsc = "smpp://idea24:pw@smsc.example.net:2775"
    settings = load_settings(environ={"IDEA24_HTTP": env["IDEA24_HTTP"], "IDEA24_SMSC": smsc})
    assert settings.http_host == "0.0.0.0"  # reachable from outside the container
    # without an SMSC the bundled simulator would listen there too: refused, naming --lab
    with pytest.raises(ConfigError, match="--lab"):
        load_settings(environ={"IDEA24_HTTP": env["IDEA24_HTTP"]})
    [expose] = [rest for word, rest in runtime if word == "EXPOSE"]
    assert int(expose.split("/")[0]) == settings.http_port
    check = containerfile_healthcheck()
    assert "/healthz" in check[-1] and "IDEA24_HTTP" in check[-1]
    routes = {r.resource.canonical for r in _server_routes() if r.resource is not None}
    assert "/healthz" in routes


def _server_routes() -> list[Any]:
    from gateway.app import create_app
    from gateway.settings import Settings

    app = create_app(Settings())
    return list(app.router.routes())


def test_compose_runs_redis_postgresql_a_migration_and_the_server() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "migrate", "idea24"} <= set(services)
    parser = build_parser()
    for service in services.values():
        if service.get("build") or str(service.get("image", "")).startswith("localhost/idea24"):
            assert service["build"]["context"] == ".."
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
            parser.parse_args(service["command"])  # every command is one idea24 has
    migrate, server = services["migrate"], services["idea24"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("redis", "postgres", "idea24"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_wires_the_server_to_its_redis_postgresql_and_published_port() -> None:
    services = compose()["services"]
    server = services["idea24"]
    settings = load_settings(environ=server["environment"])
    db = urlsplit(settings.database_url)
    pg = services["postgres"]["environment"]
    assert db.hostname == "postgres" and db.port == 5432
    assert db.username == pg["POSTGRES_USER"] and db.path == f"/{pg['POSTGRES_DB']}"
    assert urlsplit(settings.redis_url or "").hostname == "redis"
    [published] = server["ports"]
    host_ip, _, container_port = published.split(":")
    assert host_ip == "127.0.0.1"  # the API is for the portal and Prometheus, not the world
    assert int(container_port) == settings.http_port
    assert server["healthcheck"]["test"][1:] == containerfile_healthcheck()
    [smsc] = settings.smsc
    assert smsc.host == "simulator" and smsc.port == 2775  # the lab profile's simulator
    simulator = services["simulator"]
    assert simulator["profiles"] == ["lab"]
    assert "0.0.0.0:2775" in simulator["command"]
