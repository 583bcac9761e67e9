"""What a test does when something it needs is not installed here (node, nginx, Chromium,
an extra, the C decoder): CI installs every one of them (``.ci/run``), so there a missing
one fails the test; anywhere else it skips it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str, *, module: bool = False) -> NoReturn:
    """Fail under CI (``CI`` set, and not to ``0``, ``false`` or ``no``), else skip the
    test (``module``: the whole module, when called at import)."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
