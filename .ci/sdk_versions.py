"""The official SDKs CI tests against, read from pyproject.toml's ``test`` extra.

python .ci/sdk_versions.py names      # openai anthropic google-genai ollama
python .ci/sdk_versions.py oldest     # openai==1.109.1 ... (each floor, pinned)
python .ci/sdk_versions.py installed  # what this environment has, one per line
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

SDKS = ("openai", "anthropic", "google-genai", "ollama")


def floors() -> dict[str, str]:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    found: dict[str, str] = {}
    for req in project["project"]["optional-dependencies"]["test"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", req)
        if m and m.group(1) in SDKS:
            found[m.group(1)] = m.group(2)
    missing = [name for name in SDKS if name not in found]
    if missing:
        raise SystemExit(f"pyproject.toml's test extra declares no 'NAME>=X' floor for {missing}")
    return found


def main(what: str) -> None:
    if what == "names":
        print(" ".join(SDKS))
    elif what == "oldest":
        print(" ".join(f"{name}=={floor}" for name, floor in floors().items()))
    elif what == "installed":
        for name in SDKS:
            try:
                print(f"  {name} {version(name)}")
            except PackageNotFoundError:
                print(f"  {name} (not installed)")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
