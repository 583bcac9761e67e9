"""Anthropic Messages (``POST /v1/messages``): the codec, in ``stream`` for now."""

from __future__ import annotations

from .stream import (
    ANTHROPIC,
    PING_FRAME,
    REDACTED,
    AnthropicDecoder,
    AnthropicDialect,
    AnthropicEncoder,
)

__all__ = [
    "ANTHROPIC",
    "PING_FRAME",
    "REDACTED",
    "AnthropicDecoder",
    "AnthropicDialect",
    "AnthropicEncoder",
]
