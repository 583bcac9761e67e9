"""What the dialect and gateway tests share: running a decoder over chunks, reading an
encoded SSE stream back as JSON events, the error kinds with their HTTP statuses, and
SDK clients pointed at a loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import anthropic
import openai
import orjson

from tokenrelay.llm import Delta, ErrorKind
from tokenrelay.llm.codec import StreamDecoder
from tokenrelay.sse import Decoder

# Each error kind and the HTTP status a dialect answers it with.
ERROR_STATUSES = [
    (ErrorKind.INVALID_REQUEST, 400),
    (ErrorKind.AUTHENTICATION, 401),
    (ErrorKind.PERMISSION, 403),
    (ErrorKind.NOT_FOUND, 404),
    (ErrorKind.REQUEST_TOO_LARGE, 413),
    (ErrorKind.RATE_LIMIT, 429),
    (ErrorKind.SERVER, 500),
    (ErrorKind.OVERLOADED, 503),
    (ErrorKind.TIMEOUT, 504),
]


def feed_all(decoder: StreamDecoder, chunks: Iterable[bytes]) -> list[Delta]:
    """Every delta ``decoder`` gives for ``chunks``, then for the end of the stream."""
    out: list[Delta] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def named_events(wire: bytes) -> list[tuple[str, dict[str, Any]]]:
    """An encoded SSE stream as (event name, JSON data) pairs, read by the SSE core."""
    decoder = Decoder()
    return [(e.event, json.loads(e.data)) for e in [*decoder.feed(wire), *decoder.close()]]


def openai_client(base_url: str, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)


def anthropic_client(base_url: str, api_key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)


def data_lines(wire: bytes) -> list[object]:
    """The JSON of each ``data:`` line of an encoded stream ("[DONE]" as it is)."""
    return [
        line[6:].decode() if line == b"data: [DONE]" else orjson.loads(line[6:])
        for line in wire.split(b"\n")
        if line.startswith(b"data: ")
    ]
