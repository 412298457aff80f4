"""The Containerfile and deploy/compose.yaml as data, read as a container engine would."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, ROOT

_INTERPOLATE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def instructions() -> list[tuple[str, str]]:
    """The Containerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = (ROOT / "Containerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def containerfile_healthcheck() -> list[str]:
    [args] = [rest for word, rest in instructions() if word == "HEALTHCHECK"]
    _, _, cmd = args.partition("CMD ")
    argv = json.loads(cmd)
    assert isinstance(argv, list)
    return [str(a) for a in argv]


def compose() -> dict[str, Any]:
    """deploy/compose.yaml with ${VAR:-default} as its default and every other ${VAR} as x."""

    def value(m: re.Match[str]) -> str:
        return m.group(3) if m.group(2) == "-" else "x"

    data = yaml.safe_load(_INTERPOLATE.sub(value, (DEPLOY / "compose.yaml").read_text()))
    assert isinstance(data, dict)
    return data


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]
