"""What the modules of the OpenAI Chat codec share: the dialect's name, its finish reason
words and usage, both ways."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..lenient import as_int, as_obj
from ..model import Finish, FinishReason, Usage

NAME = "openai_chat"

R = FinishReason
_REASON_OF_WORD: dict[str, FinishReason] = {
    "stop": R.STOP,
    "length": R.LENGTH,
    "tool_calls": R.TOOL_CALLS,
    "function_call": R.TOOL_CALLS,
    "content_filter": R.CONTENT_FILTER,
    # Words of OpenAI-compatible servers (TGI, llama.cpp forks, proxies of other APIs).
    "eos": R.STOP,
    "eos_token": R.STOP,
    "stop_sequence": R.STOP,
    "end_turn": R.STOP,
    "max_tokens": R.LENGTH,
    "model_length": R.LENGTH,
    "tool_use": R.TOOL_CALLS,
    "refusal": R.CONTENT_FILTER,
    "error": R.ERROR,
}
_WORD_OF_REASON: dict[FinishReason, str] = {
    R.STOP: "stop",
    R.LENGTH: "length",
    R.TOOL_CALLS: "tool_calls",
    R.CONTENT_FILTER: "content_filter",
    R.PAUSE: "stop",
    R.ERROR: "error",
    R.OTHER: "stop",
}
_OWN_WORDS = frozenset({"stop", "length", "tool_calls", "content_filter"})


def usage_of(u: Mapping[str, Any]) -> Usage:
    cached = as_obj(u.get("prompt_tokens_details")).get("cached_tokens")
    if cached is None:
        cached = u.get("prompt_cache_hit_tokens")  # DeepSeek's name for it
    return Usage(
        as_int(u.get("prompt_tokens")),
        as_int(u.get("completion_tokens")),
        as_int(cached),
        as_int(as_obj(u.get("completion_tokens_details")).get("reasoning_tokens")),
    )


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def parse_finish(word: str, index: int, stop_reason: Any = None) -> Finish:
    stop = stop_reason if isinstance(stop_reason, str) else None
    return Finish(_REASON_OF_WORD.get(word, R.OTHER), word, stop, index)


def finish_word(finish: Finish) -> str:
    if finish.raw in _OWN_WORDS and _REASON_OF_WORD[finish.raw] == finish.reason:
        return finish.raw
    return _WORD_OF_REASON[finish.reason]
