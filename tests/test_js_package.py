"""The JavaScript package ships as both: ``npm pack`` of src/tokenrelay/web yields exactly
the package's modules and types, and the Python wheel carries them too (the gateway serves
the chat page and its modules from the wheel)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.required import missing

ROOT = Path(__file__).parent.parent
WEB = ROOT / "src" / "tokenrelay" / "web"
PACKAGE = json.loads((WEB / "package.json").read_text())
CHAT_PAGE = ["index.html", "chat.js", "chat.css", "markdown.js"]


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        missing(f"{tool} is not installed")
    return found


def test_npm_pack_yields_the_package_and_nothing_else(tmp_path: Path) -> None:
    npm = need("npm")
    result = subprocess.run(
        [npm, "pack", "--dry-run", "--json", "--pack-destination", str(tmp_path)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (packed,) = json.loads(result.stdout)
    assert packed["name"] == "tokenrelay"
    assert sorted(f["path"] for f in packed["files"]) == sorted([*PACKAGE["files"], "package.json"])


@pytest.mark.slow
def test_the_wheel_carries_the_js_modules_and_the_chat_page(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tokenrelay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in [*PACKAGE["files"], "package.json", *CHAT_PAGE]:
        assert f"tokenrelay/web/{name}" in names, name
