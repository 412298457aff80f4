"""The operator's kit under deploy/ (and the Containerfile): paths and the tools that check it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "operator-guide.md"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool (package prometheus, installed by .ci/prepare): required under CI."""
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is missing (apt-get install prometheus)")
    assert found is not None
    return found


def run(*cmd: str, cwd: Path | None = None, stdin: str | None = None) -> tuple[int, str]:
    """Exit code and stdout + stderr of a short command."""
    done = subprocess.run(
        cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout + done.stderr
