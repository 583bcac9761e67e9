"""Write seed inputs for the fuzzer from tests/data/conformance/sse_vectors.json.

Each "parse" vector's bytes (plus its initial last event ID where it has one, and its
chunks where it gives them) become a few inputs in the format of sse_case.py: default
limits in one piece, small limits at small chunk sizes, and as arrays. Usage:
``python fuzz/make_corpus.py OUT_DIR`` (run.sh writes fuzz/seeds/ on every run).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import sse_case

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "data", "conformance", "sse_vectors.json")

DEFAULT = 0xC0 + sse_case.SPECIAL_LIMITS.index(16 * 1024 * 1024)


def header(max_line: int, max_event: int, initial_id: str, flags: int, sizes: list[int]) -> bytes:
    ids = sse_case.IDS.index(initial_id) if initial_id in sse_case.IDS else 0
    return bytes([max_line, max_event, ids | flags, len(sizes)]) + bytes(sizes)


def seeds(case: dict) -> list[bytes]:
    stream = bytes.fromhex(case["input_hex"])
    initial = case.get("initial_last_event_id", "")
    out = [
        header(DEFAULT, DEFAULT, initial, 0, []) + stream,
        header(0x10, 0x30, initial, 0, [1, 3, 7, 2]) + stream,  # limits 17 and 49
        header(0x90, 0x9F, initial, 0x40, [5, 0, 11]) + stream,  # arrays, an empty chunk
        header(0x08, 0x20, initial, 0x80, [13]) + stream,  # limits 9 and 33, no feed(b"")
    ]
    if "chunks_hex" in case:
        chunks = [bytes.fromhex(h) for h in case["chunks_hex"]]
        sizes = [len(c) for c in chunks if 0 < len(c) < 256][:31]
        out.append(header(DEFAULT, DEFAULT, initial, 0, sizes) + b"".join(chunks))
    return out


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(VECTORS, encoding="utf-8") as f:
        cases = [c for c in json.load(f) if c["kind"] == "parse"]
    extra = [
        # Two connections through one decoder; "retry: 1" and 4352 zeros: more digits
        # than int() converts by default (sys.get_int_max_str_digits()).
        header(DEFAULT, DEFAULT, "7", 0x08, [])
        + b"retry: 1\xf5\xf5\x430\n\ndata: a\r\nid: 3\r\n\r\n\xfe\xfedata: b\n\n",
        # A retry of 25 digits: past the C decoder's 18-digit fast conversion.
        header(0x40, 0x9F, "", 0, [9, 4]) + b"retry: 1234567890123456789012345\ndata: x\n\n",
        # An 80 KiB line (past KEEP_BYTES) in 1 KiB chunks, then an event.
        header(DEFAULT, DEFAULT, "", 0x38, [1])
        + b"data: "
        + b"\xf5\xf5\xffx" * 5
        + b"\n\ndata: y\n\n",
        # The hostile-GC mode. Event types, ids and retries a reset could free (not
        # one-character strings or small ints, which CPython caches).
        header(DEFAULT, DEFAULT, "", 0, [3])
        + b"event: type-one\ndata: a\n\nevent: type-two\nid: id-two\nretry: 12345\ndata: b\n\n" * 8,
    ]
    extra[-1] = extra[-1][:3] + bytes([0xE0 | 1]) + extra[-1][4:]
    written = 0
    for data in [s for c in cases for s in seeds(c)] + extra:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        written += 1
    print(f"{written} seed inputs in {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1])
