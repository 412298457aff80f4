"""docs/operator-guide.md's "Deploy" section uses every file the operator's kit ships."""

from __future__ import annotations

from tests.deploy.conftest import DEPLOY, GUIDE, ROOT


def deploy_section() -> str:
    text = GUIDE.read_text()
    start = text.index("\n## Deploy\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_deploy_file_is_used_in_the_guide() -> None:
    section = deploy_section()
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / "Containerfile"]
    missing = [
        str(p.relative_to(ROOT))
        for p in files
        if str(p.relative_to(ROOT)) not in section and p.name not in section
    ]
    assert not missing, f"not in the guide's Deploy section: {missing}"
