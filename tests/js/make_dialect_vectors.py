"""Write tests/js/dialect_vectors.json: every stream fixture, decoded by the Python codec of
its dialect and encoded by the Python encoder of each dialect the JavaScript reads (OpenAI
Chat, Anthropic, OpenAI Responses), with what the Python side reads back from those bytes.

tests/js/dialects.test.mjs feeds each ``wire`` to the JS readers and expects ``expected``;
tests/test_js_dialects.py runs this script with ``--check`` and fails if the checked-in
file is not what the Python side writes today. So the two sides cannot drift apart.

    python tests/js/make_dialect_vectors.py           # rewrite the file
    python tests/js/make_dialect_vectors.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tokenrelay.llm import DIALECTS, Completion, Delta, Message, Request, TextPart, accumulate

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "data" / "fixtures"
OUT = HERE / "dialect_vectors.json"

# The dialect of each fixture, by the start of its name (openai-captures/ are OpenAI Chat).
PREFIXES = {
    "openai_chat_": "openai_chat",
    "openai_responses_": "openai_responses",
    "anthropic_": "anthropic",
    "gemini_": "gemini",
    "ollama_": "ollama",
    "vercel_ui_": "vercel_ui",
}
# What the JavaScript reads, by its name for each.
TARGETS = {
    "openai_chat": "openai-chat",
    "anthropic": "anthropic",
    "openai_responses": "openai-responses",
}
REQUEST = Request(
    model="client-model", messages=(Message("user", (TextPart("hi"),)),), include_usage=True
)


def sources() -> list[tuple[str, str]]:
    """(fixture path under tests/data/fixtures, its dialect) for every stream fixture."""
    found = [(f"openai-captures/{p.name}", "openai_chat")
             for p in sorted((FIXTURES / "openai-captures").glob("*.sse"))]  # fmt: skip
    for path in sorted((FIXTURES / "written").iterdir()):
        if path.suffix == ".json":  # an HTTP error body, not a stream
            continue
        dialect = next(d for prefix, d in PREFIXES.items() if path.name.startswith(prefix))
        found.append((f"written/{path.name}", dialect))
    return found


def decode(dialect: str, data: bytes) -> list[Delta]:
    decoder = DIALECTS[dialect].decoder()
    return [*decoder.feed(data), *decoder.close()]


def summary(completion: Completion) -> dict[str, Any]:
    """A completion in the shape the JS test assembles from parts."""
    usage = completion.usage
    error = completion.error
    return {
        "choices": [
            {
                "index": c.index,
                "text": c.text,
                "reasoning": c.reasoning,
                "refusal": c.refusal,
                "tool_calls": [
                    {"id": t.id, "name": t.name, "arguments": t.arguments} for t in c.tool_calls
                ],
                "finish": str(c.finish.reason) if c.finish else None,
            }
            for c in completion.choices
        ],
        "usage": None
        if usage is None
        else {"input": usage.input_tokens, "output": usage.output_tokens},
        "error": None if error is None else {"message": error.message, "kind": error.raw_type},
    }


def vectors() -> list[dict[str, Any]]:
    out = []
    for fixture, source in sources():
        deltas = decode(source, (FIXTURES / fixture).read_bytes())
        for target, js_name in TARGETS.items():
            wire = DIALECTS[target].encoder(REQUEST).encode_all(deltas)
            out.append(
                {
                    "fixture": fixture,
                    "source": source,
                    "dialect": js_name,
                    "wire": wire.decode(),
                    "expected": summary(accumulate(decode(target, wire))),
                }
            )
    return out


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
