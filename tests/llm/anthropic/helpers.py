"""The Anthropic Messages dialect's what its test modules share (fixtures read, small wire
builders).
"""

from __future__ import annotations

from tests.conftest import FIXTURES
from tokenrelay.llm import (
    FinishReason,
)

WRITTEN = FIXTURES / "written"


S = FinishReason


HELLO = [{"role": "user", "content": "hi"}]
