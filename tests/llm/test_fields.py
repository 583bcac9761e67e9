"""How deeply a request body may nest (``llm.fields.load_body``): exactly ``MAX_DEPTH``,
whether the body's brackets are few enough to skip the walk or not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenrelay.errors import RequestError
from tokenrelay.llm.fields import MAX_DEPTH, load_body


def nested(depth: int) -> Any:
    """A value whose innermost non-empty container is ``depth`` levels below the body."""
    value: Any = [0]
    for _ in range(depth - 2):
        value = [value]
    return value


@pytest.mark.parametrize("as_text", [False, True])
@pytest.mark.parametrize("padding", [0, 200])  # brackets elsewhere: the walk runs
def test_a_body_may_nest_max_depth_levels_and_no_more(as_text: bool, padding: int) -> None:
    def body(depth: int) -> bytes | str:
        text = json.dumps({"pad": [{}] * padding, "tools": nested(depth)})
        return text if as_text else text.encode()

    assert load_body(body(MAX_DEPTH))["tools"]
    with pytest.raises(RequestError, match="tools nests deeper"):
        load_body(body(MAX_DEPTH + 1))
