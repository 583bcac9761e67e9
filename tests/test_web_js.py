"""The JavaScript package's own tests (tests/js/*.test.mjs, ``node --test``, no npm
packages needed): the SSE parser on every conformance vector whole and split at every byte;
``stream()`` over real sockets; the dialect readers on the Python encoders' vectors; the
Node server side over node:http; the package's exports and types. (The parts that need
express or typescript: tests/test_js_npm.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.required import missing

ROOT = Path(__file__).parent.parent


def test_js_client_passes_its_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed: the JS client's tests (tests/js) did not run")
    # The files by name: how `node --test <dir>` reads a directory changed across versions.
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no tests in tests/js"
    result = subprocess.run(
        [node, "--test", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
