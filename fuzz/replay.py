"""Replay every input in the given directories through both modes (for coverage.sh).

Prints the inputs on which the decoders disagree; hostile-mode inputs just run.
"""

from __future__ import annotations

import os
import sys

import sse_case

from tokenrelay.errors import EventTooLargeError
from tokenrelay.sse.decoder import CDecoder, PyDecoder


def main(dirs: list[str]) -> int:
    assert CDecoder is not None, "the C decoder is not built"
    files = [os.path.join(d, f) for d in dirs if os.path.isdir(d) for f in sorted(os.listdir(d))]
    mismatches = 0
    for path in files:
        with open(path, "rb") as f:
            case = sse_case.parse(f.read())
        if case.hostile:
            sse_case.run_hostile(case, CDecoder, EventTooLargeError)
            continue
        try:
            sse_case.run_differential(case, CDecoder, PyDecoder, EventTooLargeError)
        except sse_case.Mismatch:
            mismatches += 1
            print("mismatch:", path)
    print(f"{len(files)} inputs replayed, {mismatches} mismatches", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
