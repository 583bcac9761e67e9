"""The OpenAI Responses API's server-side state, kept in the stream store.

A Responses request runs as a stream like any other (its log in the store, readable from
any instance), and its response id is its stream id's: ``resp_<hex>`` for
``str_<hex>``. A *stored* response (``store`` is true unless the request says false, as
at OpenAI, and unless the operator set ``[gateway] store_responses = false``) also keeps
the conversation that produced it with the stream (its input items, instructions apart),
so that:

- ``previous_response_id`` continues it: the earlier conversation, the earlier answer,
  then the new input go upstream (the earlier instructions are not carried over, as at
  OpenAI). Each turn keeps only its own input and the id it continues (``parent``): a
  chain is read back link by link, so n turns are kept once each, not n times;
- ``GET /v1/responses/{id}`` answers the response object (``in_progress`` while it
  runs), and with ``?stream=true&starting_after=N`` its events after sequence number N,
  then live; ``GET /v1/responses/{id}/input_items`` lists what it was asked;
- ``DELETE /v1/responses/{id}`` forgets it, ``POST /v1/responses/{id}/cancel`` stops a
  background one;
- ``background: true`` runs the generation to its end whoever listens: the request is
  answered at once (``queued``), or streams, and a dropped stream resumes by
  ``starting_after``.

A response lives as long as its stream: the store's retention time after it ends,
counted from its last read. Only the key that created it may read, continue, cancel or
delete it; to any other it does not exist. Not kept here: ``conversation`` objects and
stored ``prompt`` templates (400). Upstream, the state fields are never sent: the
gateway sends the whole conversation with ``store: false``.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response

from ..llm import OPENAI_RESPONSES
from ..llm.accumulate import accumulate
from ..llm.jsonio import dumps, loads
from ..llm.model import (
    Completion,
    Delta,
    ErrorKind,
    Message,
    Part,
    ReasoningPart,
    Request,
    Start,
    StreamError,
    TextPart,
    ToolCallPart,
)
from ..llm.pack import unpack
from ..store import StoreError, StreamInfo, StreamNotFoundError, StreamStore
from .handling import (
    Gateway,
    authorised,
    error_response,
    gateway_of,
    key_id,
    store_refused,
    unauthorised,
)
from .hub import RESUME_LAG, replay
from .response import Answer, HubStreamResponse
from .stream import StreamMeta

__all__ = [
    "STATE_FIELDS",
    "Refused",
    "Turn",
    "cancel",
    "delete",
    "input_items",
    "prepare",
    "queued",
    "read_completion",
    "render",
    "response_id",
    "retrieve",
    "with_id",
]

STATE_FIELDS = frozenset({"previous_response_id", "background", "store", "conversation", "prompt"})
"""Request fields the gateway answers itself: never sent upstream."""

_RESPONSE_ID = re.compile(r"resp_([0-9a-f]{32})")
_SEQUENCE = re.compile(r"[0-9]{1,11}")  # ASCII digits only (str.isdigit takes "²")
_DIALECT = OPENAI_RESPONSES


def response_id(stream_id: str) -> str:
    return "resp_" + stream_id.removeprefix("str_")


def _stream_id(response_id: str) -> str | None:
    match = _RESPONSE_ID.fullmatch(response_id)
    return f"str_{match.group(1)}" if match else None


class Refused(Exception):
    """A Responses request the gateway answers with ``error`` instead."""

    def __init__(self, error: StreamError) -> None:
        super().__init__(error.message)
        self.error = error


def _invalid(message: str, param: str, status: int = 400) -> Refused:
    return Refused(StreamError(ErrorKind.INVALID_REQUEST, message, status, param=param))


@dataclass(frozen=True, slots=True)
class Turn:
    """One Responses request, resolved: what goes upstream, what the encoders echo, and
    what is kept with the stream."""

    upstream: Request  # the whole conversation; no state fields; store: false
    echo: Request  # the request as answered: store, background, previous_response_id
    conversation: Mapping[str, Any] | None  # kept with the stream when stored
    background: bool
    history_bytes: int = 0  # what the earlier turns add to the request (their kept JSON)

    @property
    def stored(self) -> bool:
        return self.conversation is not None


async def prepare(request: Request, body: bytes, gateway: Gateway, http: HTTPRequest) -> Turn:
    """Resolve ``request``'s state fields (``Refused`` for what is not served)."""
    extra = dict(request.extra)
    for field, what in (("conversation", "conversations"), ("prompt", "stored prompts")):
        if extra.get(field) is not None:
            raise _invalid(
                f"{field} is not supported: this gateway keeps no {what}; send the input "
                "(and previous_response_id to continue a stored response)",
                field,
            )
    keeps = gateway.config.store_responses
    stored = keeps and extra.get("store") is not False
    background = extra.get("background") is True
    previous = extra.get("previous_response_id")
    if background and not stored:
        why = "store is false" if keeps else "this gateway keeps no responses"
        raise _invalid(f"background responses must be stored, and {why}", "background")
    if previous is not None and not isinstance(previous, str):
        raise _invalid("previous_response_id must be a string", "previous_response_id")
    if previous is not None and not keeps:
        raise _invalid(
            "previous_response_id is not supported: this gateway keeps no responses "
            "([gateway] store_responses = false); send the whole conversation in input",
            "previous_response_id",
        )
    messages = list(request.messages)
    instructed = bool(messages) and messages[0].role == "system" and _has_instructions(body)
    instructions, given = (messages[:1], messages[1:]) if instructed else ([], messages)
    limit = gateway.config.max_conversation_bytes
    kept = _kept(request.model, given, previous) if stored else None
    size = len(dumps(kept)) if kept is not None else 0
    earlier: list[Message] = []
    history = 0
    if previous is not None:
        earlier, history = await _earlier_turns(previous, gateway, http, limit - size)
    if size > limit:
        raise _too_long(limit, "input")
    upstream_extra = {k: v for k, v in extra.items() if k not in STATE_FIELDS}
    upstream = replace(
        request,
        messages=(*instructions, *earlier, *given),
        extra={**upstream_extra, "store": False},
    )
    echo = replace(
        request,
        extra={
            **upstream_extra,
            "store": stored,
            "background": background,
            "previous_response_id": previous,
        },
    )
    return Turn(upstream, echo, kept, background, history)


def _too_long(limit: int, param: str) -> Refused:
    return _invalid(
        f"the conversation exceeds {limit} bytes ([gateway] max_conversation_bytes): "
        "start a new one, or send a shorter history in input",
        param,
    )


def _has_instructions(body: bytes) -> bool:
    try:
        data = loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and bool(data.get("instructions"))


def _kept(model: str, given: list[Message], previous: str | None) -> dict[str, Any]:
    """What a stored turn keeps: its own input, as Responses input items (and
    ``instructions``, when the input starts with a system message), and the response it
    continues (``parent``) — not the earlier turns again: a chain of n turns keeps each
    turn once, and is read back link by link."""
    body = _DIALECT.build_request(Request(model=model, messages=tuple(given)))
    kept: dict[str, Any] = {"input": body["input"]}
    if "instructions" in body:
        kept["instructions"] = body["instructions"]
    if previous is not None:
        kept["parent"] = previous
    return kept


def _own_turn(meta: StreamMeta) -> list[Message]:
    """The input messages a stored turn was given (its own: not its parent's)."""
    kept = dict(meta.conversation or {})
    if not kept.get("input") and not kept.get("instructions"):
        return []
    body = {"model": meta.model or "-", "input": kept.get("input") or []}
    if kept.get("instructions"):
        body["instructions"] = kept["instructions"]
    return list(_DIALECT.parse_request(body).messages)


_MAX_TURNS = 10_000  # links followed back from one previous_response_id


async def _earlier_turns(
    previous: str, gateway: Gateway, http: HTTPRequest, budget: int
) -> tuple[list[Message], int]:
    """The whole conversation that stored response ``previous`` ends, its answer
    included: its turns read back along their ``parent`` links, oldest first, at most
    ``budget`` bytes of kept input (``Refused`` beyond); and how many bytes they were."""
    turns: list[tuple[StreamMeta, Completion]] = []
    used = 0
    link: str | None = previous
    while link is not None:
        found = await _find(link, gateway, http)
        if found is None or found[2].conversation is None:  # gone, another key's, store: false
            if link == previous:
                message = f"Previous response with id {previous[:80]!r} not found."
            else:
                message = (
                    f"Previous response with id {previous[:80]!r} continues {link[:80]!r}, "
                    "which is no longer kept (retention_seconds): start a new conversation"
                )
            raise _invalid(message, "previous_response_id")
        stream_id, info, meta = found
        if not info.finished:
            raise _invalid(
                f"Previous response with id {link!r} is still in progress; wait for it to "
                "complete (GET /v1/responses/{id})",
                "previous_response_id",
            )
        completion = await read_completion(gateway.hub.store, stream_id, info)
        used += len(dumps(meta.conversation)) + sum(
            len(c.text) + len(c.reasoning) + sum(len(t.arguments) for t in c.tool_calls)
            for c in completion.choices
        )
        if used > budget or len(turns) >= _MAX_TURNS:
            raise _too_long(gateway.config.max_conversation_bytes, "previous_response_id")
        turns.append((meta, completion))
        parent = (meta.conversation or {}).get("parent")
        link = parent if isinstance(parent, str) else None
    messages: list[Message] = []
    for meta, completion in reversed(turns):
        messages += _own_turn(meta)
        answer = _answer(completion)
        if answer is not None:
            messages.append(answer)
    return messages, used


def _answer(completion: Completion) -> Message | None:
    """The assistant turn of a whole answer (choice 0), as a message of the next turn."""
    choice = next((c for c in completion.choices if c.index == 0), None)
    if choice is None:
        return None
    parts: list[Part] = []
    if choice.reasoning or choice.reasoning_signature:
        parts.append(ReasoningPart(choice.reasoning, choice.reasoning_signature))
    if choice.text:
        parts.append(TextPart(choice.text))
    parts += [ToolCallPart(c.id, c.name, c.arguments) for c in choice.tool_calls]
    return Message("assistant", tuple(parts)) if parts else None


async def with_id(deltas: AsyncIterator[Delta], id: str, model: str) -> AsyncIterator[Delta]:
    """``deltas`` answering as response ``id``: the upstream's own id replaced."""
    first = True
    async for delta in deltas:
        if first:
            first = False
            if not isinstance(delta, Start):
                yield Start(id, model)
        if isinstance(delta, Start):
            delta = replace(delta, id=id)
        yield delta


# --- reading kept responses ------------------------------------------------------------


async def _find(
    id: str, gateway: Gateway, http: HTTPRequest
) -> tuple[str, StreamInfo, StreamMeta] | None:
    """The stream of response ``id``, if the caller's key made it (None otherwise: no
    difference between unknown, expired and another key's)."""
    stream_id = _stream_id(id)
    if stream_id is None:
        return None
    try:
        info = await gateway.hub.store.info(stream_id)
    except StreamNotFoundError:
        return None
    meta = StreamMeta.from_mapping(info.meta)
    if meta.dialect != _DIALECT.name or not hmac.compare_digest(meta.key, key_id(gateway, http)):
        return None
    return stream_id, info, meta


async def read_completion(store: StreamStore, stream_id: str, info: StreamInfo) -> Completion:
    entries, _ = await store.read(stream_id, 0, info.length)
    return accumulate(unpack(e) for e in entries)


def render(meta: StreamMeta, info: StreamInfo, completion: Completion) -> dict[str, Any]:
    """The response object of a kept response, as it stands."""
    request = meta.request()
    id = response_id(info.id)
    completion = replace(completion, id=id, model=meta.model, created=meta.created)
    body = _DIALECT.render_response(completion, request)
    if not info.finished:
        body.update(status="in_progress" if info.length else "queued", usage=None)
        for item in body["output"]:
            item["status"] = "in_progress"
    elif completion.error is not None and completion.error.raw_type == "cancelled":
        body.update(status="cancelled", error=None)
    return body


def queued(meta: StreamMeta, stream_id: str) -> dict[str, Any]:
    """What a background request is answered with at once."""
    info = StreamInfo(stream_id, meta.to_dict(), 0, False)
    return render(meta, info, Completion(response_id(stream_id), meta.model))


def _not_found(id: str) -> Response:
    error = StreamError(ErrorKind.NOT_FOUND, f"No response found with id {id[:80]!r}.", 404)
    return error_response(_DIALECT, error)


async def _lookup(
    http: HTTPRequest,
) -> tuple[Gateway, str, tuple[str, StreamInfo, StreamMeta] | None, Response | None]:
    gateway = gateway_of(http)
    id = http.path_params["response_id"]
    if not authorised(gateway, http):  # before any lookup: nothing is revealed
        return gateway, id, None, error_response(_DIALECT, unauthorised())
    try:
        found = await _find(id, gateway, http)
    except StoreError as exc:
        return gateway, id, None, store_refused(_DIALECT, exc)
    if found is None or found[2].conversation is None:  # store: false keeps nothing
        return gateway, id, None, _not_found(id)
    return gateway, id, found, None


async def retrieve(http: HTTPRequest) -> Answer:
    """``GET /v1/responses/{id}``, and ``?stream=true&starting_after=N``."""
    gateway, id, found, refused = await _lookup(http)
    if refused is not None or found is None:
        return refused or _not_found(id)
    stream_id, info, meta = found
    if http.query_params.get("stream", "").lower() == "true":
        return await _stream_from(http, gateway, stream_id, info, meta)
    try:
        completion = await read_completion(gateway.hub.store, stream_id, info)
    except StoreError as exc:
        return store_refused(_DIALECT, exc)
    return JSONResponse(render(meta, info, completion))


async def _stream_from(
    http: HTTPRequest, gateway: Gateway, stream_id: str, info: StreamInfo, meta: StreamMeta
) -> Answer:
    """The response's events after ``starting_after`` (every one without it), then live."""
    raw = http.query_params.get("starting_after")
    if raw is not None and not _SEQUENCE.fullmatch(raw):
        error = _invalid("starting_after must be a sequence number", "starting_after").error
        return error_response(_DIALECT, error)
    hub, request = gateway.hub, meta.request()
    try:
        after = None if raw is None else await _position(hub.store, stream_id, request, int(raw))
    except StoreError as exc:
        return store_refused(_DIALECT, exc)
    except Refused as exc:
        return error_response(_DIALECT, exc.error)
    reader = hub.reader(stream_id, _DIALECT, request, after)
    if after is None:
        return HubStreamResponse(hub, reader, gateway.streams)
    try:
        first = await replay(hub.store, reader, await hub.store.info(stream_id), after)
    except ValueError as exc:
        reader.detach()
        return error_response(_DIALECT, _invalid(str(exc), "starting_after").error)
    except StoreError as exc:
        reader.detach()
        return store_refused(_DIALECT, exc)
    if first is None:  # finished, and nothing after that number
        reader.detach()
        return Response(status_code=204)
    return HubStreamResponse(hub, reader, gateway.streams, first=first)


async def _position(
    store: StreamStore, stream_id: str, request: Request, after: int
) -> tuple[int, int]:
    """Where event number ``after`` is in the log: entry k's frame j (a resume position,
    as a ``Last-Event-ID`` of ``k.j``). Every reader numbers a log alike (no merging in
    this dialect), so re-encoding the log finds it; a log behind the number (written
    behind on another instance) is waited for a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESUME_LAG
    encoder = _DIALECT.encoder(request)
    seen = pos = 0
    while True:
        entries, done = await store.read(stream_id, pos)
        for entry in entries:
            frames = encoder.encode(unpack(entry))
            if seen + len(frames) > after:
                return pos, after - seen
            seen += len(frames)
            pos += 1
        if done:
            closing = encoder.close()
            if seen + len(closing) > after:
                return pos, after - seen
            raise _invalid(
                f"starting_after {after} is past the end of this response", "starting_after"
            )
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise _invalid(f"starting_after {after} is past the events so far", "starting_after")
        await store.read_wait(stream_id, pos, remaining)


async def input_items(http: HTTPRequest) -> Response:
    """``GET /v1/responses/{id}/input_items``: the input the response was given (its own
    turn's: not the earlier turns of ``previous_response_id``; instructions apart),
    newest first unless ``order=asc``."""
    _, id, found, refused = await _lookup(http)
    if refused is not None or found is None:
        return refused or _not_found(id)
    _, _, meta = found
    items = [dict(i) for i in (meta.conversation or {}).get("input") or [] if isinstance(i, dict)]
    suffix = id.removeprefix("resp_")
    for n, item in enumerate(items):
        item.setdefault("id", f"in_{suffix}_{n}")
        if item.get("type", "message") == "message":
            item.setdefault("type", "message")
            item.setdefault("status", "completed")
            if isinstance(item.get("content"), str):  # listed as content parts
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
    if http.query_params.get("order", "desc") != "asc":
        items.reverse()
    return JSONResponse(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        }
    )


async def delete(http: HTTPRequest) -> Response:
    """``DELETE /v1/responses/{id}``: stop it if it runs, and forget it."""
    gateway, id, found, refused = await _lookup(http)
    if refused is not None or found is None:
        return refused or _not_found(id)
    stream_id, info, _ = found
    try:
        if not info.finished:
            await gateway.hub.cancel_anywhere(stream_id)
        await gateway.hub.store.delete(stream_id)
    except StreamNotFoundError:
        return _not_found(id)
    except StoreError as exc:
        return store_refused(_DIALECT, exc)
    return JSONResponse({"id": id, "object": "response", "deleted": True})


async def cancel(http: HTTPRequest) -> Response:
    """``POST /v1/responses/{id}/cancel``: stop a background response; the response
    object as it then stands (``cancelled``, or as it ended first)."""
    gateway, id, found, refused = await _lookup(http)
    if refused is not None or found is None:
        return refused or _not_found(id)
    stream_id, info, meta = found
    if meta.settings.get("extra", {}).get("background") is not True:
        return error_response(
            _DIALECT, _invalid("Cannot cancel a synchronous response.", "response_id").error
        )
    store = gateway.hub.store
    try:
        if not info.finished:
            await gateway.hub.cancel_anywhere(stream_id)
            info = await store.info(stream_id)
        completion = await read_completion(store, stream_id, info)
    except StreamNotFoundError:
        return _not_found(id)
    except StoreError as exc:
        return store_refused(_DIALECT, exc)
    return JSONResponse(render(meta, info, completion))
