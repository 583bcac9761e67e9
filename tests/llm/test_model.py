"""The neutral model's own behaviour (its codecs are tested per dialect)."""

from __future__ import annotations

from dataclasses import fields

from tokenrelay.llm import Request


def test_a_request_streamed_as_an_upstream_model_keeps_every_other_field() -> None:
    # Every field a distinct object: a field added to Request, or moved, is checked too.
    values = {f.name: object() for f in fields(Request)}
    request = Request(**values)
    sent = request.streamed_as("upstream-model")
    assert (sent.model, sent.stream, sent.include_usage) == ("upstream-model", True, True)
    for name, value in values.items():
        if name not in ("model", "stream", "include_usage"):
            assert getattr(sent, name) is value, name
    assert request.model is values["model"]  # (a copy: the request itself is unchanged)
