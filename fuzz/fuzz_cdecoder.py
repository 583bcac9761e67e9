"""Coverage-guided differential fuzzing of the C SSE decoder, with atheris and ASan.

Run it through ``fuzz/run.sh``, which builds ``_cdecoder.c`` with AddressSanitizer and
libFuzzer coverage into a staged copy of the package and sets LD_PRELOAD, PYTHONMALLOC
and TOKENRELAY_FUZZ_SO. The input format and the checks are in ``sse_case.py``.

Coverage feedback comes from the C extension (SanitizerCoverage) and from the Python
reference decoder (atheris instruments ``tokenrelay`` on import), so inputs that reach a
new fast path of either count as new.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sse_case

# TOKENRELAY_FUZZ_PY_COVERAGE=0: coverage of the C code only (faster per input).
if os.environ.get("TOKENRELAY_FUZZ_PY_COVERAGE", "1") != "0":
    with atheris.instrument_imports(include=["tokenrelay.sse.decoder"]):
        import tokenrelay.sse.decoder  # noqa: F401
from tokenrelay.errors import EventTooLargeError
from tokenrelay.sse import _cdecoder
from tokenrelay.sse.decoder import CDecoder, PyDecoder

# Refuse to fuzz anything but the instrumented build run.sh made.
expected = os.environ.get("TOKENRELAY_FUZZ_SO")
built = os.path.realpath(_cdecoder.__file__)
if CDecoder is None or expected is None or built != os.path.realpath(expected):
    sys.exit(f"not the ASan build: CDecoder={CDecoder!r}, _cdecoder={built}, expected {expected}")


def test_one_input(data: bytes) -> None:
    case = sse_case.parse(data)
    if case.hostile:
        sse_case.run_hostile(case, CDecoder, EventTooLargeError)
    else:
        sse_case.run_differential(case, CDecoder, PyDecoder, EventTooLargeError)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
