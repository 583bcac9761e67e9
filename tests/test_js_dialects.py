"""The JS dialect readers' vectors (tests/js/dialect_vectors.json) are what the Python
encoders write today: regenerating them changes nothing. (tests/js/dialects.test.mjs, run
by tests/test_web_js.py, feeds them to the JS readers.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "tests" / "js" / "make_dialect_vectors.py"


def test_js_dialect_vectors_match_what_the_python_encoders_write() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
