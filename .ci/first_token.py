"""Ask the gateway on 127.0.0.1:8080 for a streamed answer; print how long after START (a
``time.time()`` value: when the README's run command started) its first token arrived,
and fail when that is over LIMIT seconds.

    python3 .ci/first_token.py START LIMIT
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

BASE = "http://127.0.0.1:8080"


def main() -> None:
    start, limit = float(sys.argv[1]), float(sys.argv[2])
    with urllib.request.urlopen(f"{BASE}/v1/models", timeout=30) as r:
        model = json.load(r)["data"][0]["id"]
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    request = urllib.request.Request(
        f"{BASE}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    first = None
    text = ""
    with urllib.request.urlopen(request, timeout=120) as r:
        for line in r:
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.time() - start
                text += piece
    if first is None:
        raise SystemExit(f"{model} streamed no token")
    print(f"first token {first:.1f} s after the run command started (limit {limit:g} s)")
    print(f"served ({model}): {text[:80]!r}")
    if first > limit:
        raise SystemExit(f"the first token came after {first:.1f} s, over {limit:g} s")


if __name__ == "__main__":
    main()
