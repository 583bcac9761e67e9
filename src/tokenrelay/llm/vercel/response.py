"""Non-streamed answers: this dialect has none (``useChat`` always reads a stream)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Completion, Delta
from ._common import unsupported

__all__ = ["parse_response", "render_response"]


def render_response(completion: Completion) -> dict[str, Any]:
    unsupported("non-streamed responses (useChat always reads a stream)")


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    unsupported("non-streamed responses (useChat always reads a stream)")
