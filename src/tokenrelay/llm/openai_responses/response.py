"""OpenAI Responses response objects and their output items, and non-streamed answers
read and written. The stream encoder builds its events from the same pieces, and the
stream decoder reads whole items and terminal responses with them.

- *Finish reasons.* The Responses API has none: a completed response ends ``STOP``, or
  ``TOOL_CALLS`` when it made function calls; ``response.incomplete`` ends ``LENGTH``
  (``max_output_tokens``) or ``CONTENT_FILTER`` (``content_filter``), anything else
  ``OTHER`` with the word in ``Finish.raw``. The encoder maps them back.
- *Only choice 0*: the dialect has one output per response; the encoder drops other
  choices. Logprobs and annotations are not carried (the encoder sends ``[]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import isfinite
from typing import Any

from ..jsonio import loads
from ..lenient import as_int, as_obj, as_objs, as_str
from ..model import (
    Choice,
    Completion,
    Delta,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Request,
    Start,
    TextDelta,
    Usage,
)
from ..toolcalls import ToolCallTracker
from ._common import NAME, Json, reasoning_text
from .errors import FAILED_CODE, error_from_object, malformed, own_word
from .request import tool_choice_json, tool_json

__all__ = ["parse_response", "render_response"]

# --- vocabulary ---------------------------------------------------------------------

_INCOMPLETE_REASON = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
INCOMPLETE_WORD = {reason: word for word, reason in _INCOMPLETE_REASON.items()}
OTHER_INCOMPLETE_WORDS = frozenset({"max_messages", "steered"})


# --- output items (shared by the encoder, render_response and the decoder) ----------


def text_part(text: str) -> Json:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(id: str, status: str, content: list[Json]) -> Json:
    return {"id": id, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(id: str, status: str, content: list[Json], signature: str) -> Json:
    item: Json = {"id": id, "type": "reasoning", "summary": [], "content": content}
    if signature:
        item["encrypted_content"] = signature
    item["status"] = status
    return item


def call_item(id: str, status: str, call_id: str, name: str, arguments: str) -> Json:
    return {
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def usage_json(usage: Usage | None) -> Json | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        # cache writes are not in the neutral model; the SDK types the field as required
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _usage_of(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cached_tokens=as_int(as_obj(usage.get("input_tokens_details")).get("cached_tokens")),
        reasoning_tokens=as_int(as_obj(usage.get("output_tokens_details")).get("reasoning_tokens")),
    )


def item_deltas(item: Mapping[str, Any], tools: ToolCallTracker, key: object) -> list[Delta]:
    """The deltas of one whole output item (non-streamed answers, unstreamed items)."""
    out: list[Delta] = []
    kind = item.get("type")
    if kind == "message":
        for part in as_objs(item.get("content")):
            if part.get("type") == "output_text" and as_str(part.get("text")):
                out.append(TextDelta(part["text"]))
            elif part.get("type") == "refusal" and as_str(part.get("refusal")):
                out.append(RefusalDelta(part["refusal"]))
    elif kind == "reasoning":
        text = reasoning_text(item)
        if text:
            out.append(ReasoningDelta(text))
        if as_str(item.get("encrypted_content")):
            out.append(ReasoningDelta("", item["encrypted_content"]))
    elif kind == "function_call":
        out += tools.start(0, key, as_str(item.get("call_id")), as_str(item.get("name")))
        out += tools.arguments(0, key, as_str(item.get("arguments")))
        out += tools.end(0, key)
    return out


def terminal_deltas(response: Mapping[str, Any], tools: ToolCallTracker) -> list[Delta]:
    """Usage and Finish (or the StreamError) that end a response of this status."""
    out: list[Delta] = []
    status = response.get("status")
    usage = _usage_of(response.get("usage"))
    if usage is not None:
        out.append(usage)
    if status == "failed":
        error = response.get("error")
        if not isinstance(error, dict):
            error = {"code": "server_error", "message": "the response failed"}
        return [*out, error_from_object(error)]
    out += tools.end_all(0)
    if status == "incomplete":
        word = as_str(as_obj(response.get("incomplete_details")).get("reason")) or "incomplete"
        out.append(Finish(_INCOMPLETE_REASON.get(word, FinishReason.OTHER), word))
    elif status == "completed":
        out.append(Finish(FinishReason.TOOL_CALLS if 0 in tools.called else FinishReason.STOP))
    elif status == "cancelled":
        out.append(Finish(FinishReason.OTHER, "cancelled"))
    return out


def start_of(response: Any) -> Start:
    response = response if isinstance(response, dict) else {}
    created = response.get("created_at")
    created = int(created) if isinstance(created, float) and isfinite(created) else as_int(created)
    return Start(as_str(response.get("id")), as_str(response.get("model")), created)


def response_object(id: str, model: str, created: int, request: Request | None) -> Json:
    """A response object in progress, echoing the settings of ``request`` if known."""
    extra: Mapping[str, Any] = {}
    settings: Json = {}
    if request is not None:
        extra = request.extra if request.dialect == NAME else {}
        settings = {
            "max_output_tokens": request.max_tokens,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "tool_choice": tool_choice_json(request.tool_choice) or "auto",
            "tools": extra.get("tools") or [tool_json(t) for t in request.tools],
            "user": request.user or None,
        }
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": extra.get("background") is True,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": extra.get("previous_response_id"),
        "reasoning": extra.get("reasoning") or {"effort": None, "summary": None},
        # What the server that answers keeps: it says so in the request's own fields
        # (a gateway that kept nothing sets store: false there).
        "store": extra.get("store") is True,
        "temperature": None,
        "text": extra.get("text") or {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": extra.get("truncation") or "disabled",
        "usage": None,
        "user": None,
        "metadata": extra.get("metadata") or {},
        **settings,
    }


# --- non-streamed answers ------------------------------------------------------------


def render_response(completion: Completion, request: Request | None = None) -> dict[str, Any]:
    """The response object of a whole answer, echoing the settings of ``request`` (as
    the stream's ``response.created`` does) when it is given."""
    choice = next((c for c in completion.choices if c.index == 0), Choice(0))
    suffix = completion.id.removeprefix("resp_")
    finish = choice.finish
    incomplete = finish is not None and (
        finish.reason in INCOMPLETE_WORD or finish.raw in OTHER_INCOMPLETE_WORDS
    )
    item_status = "incomplete" if incomplete else "completed"
    output: list[Json] = []
    if choice.reasoning or choice.reasoning_signature:
        content = [{"type": "reasoning_text", "text": choice.reasoning}] if choice.reasoning else []
        output.append(
            reasoning_item(f"rs_{suffix}_0", item_status, content, choice.reasoning_signature)
        )
    if choice.text or choice.refusal:
        content = [text_part(choice.text)] if choice.text else []
        if choice.refusal:
            content.append({"type": "refusal", "refusal": choice.refusal})
        output.append(message_item(f"msg_{suffix}_{len(output)}", item_status, content))
    for call in choice.tool_calls:
        output.append(
            call_item(f"fc_{suffix}_{len(output)}", "completed", call.id, call.name, call.arguments)
        )
    response = response_object(completion.id, completion.model, completion.created, request)
    response["model"] = completion.model or response["model"]
    response.update(output=output, usage=usage_json(completion.usage), status="completed")
    if completion.error is not None:
        error = completion.error
        code = own_word(error.raw_type, error.kind, FAILED_CODE.get(error.kind, "server_error"))
        response.update(status="failed", error={"code": code, "message": error.message})
    elif finish is not None and finish.reason is FinishReason.ERROR:
        message = "the upstream failed the generation"
        response.update(status="failed", error={"code": "server_error", "message": message})
    elif incomplete and finish is not None:
        word = INCOMPLETE_WORD.get(finish.reason, finish.raw)
        response.update(status="incomplete", incomplete_details={"reason": word})
    return response


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    if not isinstance(body, Mapping):
        try:
            body = loads(body)
        except ValueError:
            return [malformed("the response body is not JSON")]
        if not isinstance(body, dict):
            return [malformed("the response body is not a JSON object")]
    error = body.get("error")
    if isinstance(error, dict) and "output" not in body:
        return [error_from_object(error)]
    tools = ToolCallTracker()
    out: list[Delta] = [start_of(body)]
    for position, item in enumerate(as_objs(body.get("output"))):
        out += item_deltas(item, tools, position)
    return out + terminal_deltas(body, tools)
