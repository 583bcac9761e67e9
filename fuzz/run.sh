#!/usr/bin/env bash
# Fuzz the C SSE decoder for a while (see fuzz/README.md).
#
#   bash fuzz/run.sh SECONDS [libFuzzer options...]   fuzz on one core for SECONDS
#   bash fuzz/run.sh repro FILE...                     run saved inputs once, under ASan
#
# Idempotent: makes (or reuses) a venv with atheris under $TOKENRELAY_FUZZ_HOME
# (/tmp/tokenrelay-fuzz), copies src/tokenrelay there and compiles _cdecoder.c into the
# copy with AddressSanitizer, UBSan (trap mode) and libFuzzer coverage, writes the seed
# inputs, then runs libFuzzer (through atheris) in a single process. The repository's
# own .venv and src/ are not touched.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${TOKENRELAY_FUZZ_HOME:-/tmp/tokenrelay-fuzz}
PYTHON=${PYTHON:-python3}
ATHERIS=atheris==3.0.0
COVERAGE=coverage==7.18.0  # for coverage.sh only
VENV=$WORK/venv
STAGE=$WORK/pkg

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
MODE=$1; shift
FILES=()
if [ "$MODE" = repro ]; then
    [ $# -ge 1 ] || usage
    for f in "$@"; do FILES+=("$(readlink -f "$f")"); done
elif ! [[ "$MODE" =~ ^[1-9][0-9]*$ ]]; then
    usage
fi

# 1. clang (Debian: clang; its ASan/libFuzzer runtimes are not needed, atheris ships them).
if ! command -v clang >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing clang" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >&2
    else
        echo "clang is needed: apt-get install clang" >&2; exit 1
    fi
fi

# 2. The venv with atheris (a manylinux wheel for CPython 3.8-3.12) and coverage.py.
if ! "$VENV/bin/python" -c 'import atheris, coverage' 2>/dev/null; then
    echo "== making $VENV with $ATHERIS" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q "$ATHERIS" "$COVERAGE"
fi
PY=$VENV/bin/python

# 3. The package, staged, with the instrumented extension (rebuilt every run: ~1 s).
read -r INCLUDE SUFFIX < <("$PY" -c \
    'import sysconfig as s; print(s.get_paths()["include"], s.get_config_var("EXT_SUFFIX"))')
rm -rf "$STAGE.new"
mkdir -p "$STAGE.new"
cp -r "$ROOT/src/tokenrelay" "$STAGE.new/"
find "$STAGE.new" \( -name '*.so' -o -name '*.pyc' \) -delete
SO=$STAGE/tokenrelay/sse/_cdecoder$SUFFIX
CFLAGS=(-g -O1 -fno-omit-frame-pointer -fPIC -shared
        -fsanitize=address,fuzzer-no-link
        -fsanitize=undefined -fsanitize-trap=undefined
        -Wall -Wextra -Wno-unused-parameter)
clang "${CFLAGS[@]}" -I"$INCLUDE" "$ROOT/src/tokenrelay/sse/_cdecoder.c" \
    -o "$STAGE.new/tokenrelay/sse/_cdecoder$SUFFIX"
rm -rf "$STAGE"
mv "$STAGE.new" "$STAGE"

# 4. Seeds from the conformance vectors (not committed; rewritten each run).
cd "$HERE"
mkdir -p seeds corpus artifacts logs
"$PY" make_corpus.py seeds >&2

# 5. Run. LD_PRELOAD only for the fuzzer process: atheris's ASan+libFuzzer runtime.
# PYTHONMALLOC=malloc sends PyMem_Malloc (the decoder's buffers) to malloc, where ASan
# sees every byte; pymalloc would hide overflows inside its pools. Leak detection is off:
# CPython does not free everything at exit. With every Python object a malloc, ASan's
# defaults (a 256 MB quarantine, 30-frame allocation stacks, of which the interpreter
# makes endless variants) grew the process past 2 GB in minutes; 10 frames still show
# the decoder's own, and a 64 MB quarantine is far more than its buffers.
ASAN_RT=$("$PY" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')
SYMBOLIZER=$(dirname "$(readlink -f "$(command -v clang)")")/llvm-symbolizer
RUN_ENV=(env -u TOKENRELAY_NO_EXTENSIONS
    LD_PRELOAD="$ASAN_RT"
    ASAN_OPTIONS="detect_leaks=0:handle_abort=1:malloc_context_size=10:quarantine_size_mb=64:${ASAN_OPTIONS:-}"
    PYTHONMALLOC=malloc
    PYTHONPATH="$STAGE"
    TOKENRELAY_FUZZ_SO="$SO")
[ -x "$SYMBOLIZER" ] && RUN_ENV+=(ASAN_SYMBOLIZER_PATH="$SYMBOLIZER")

if [ "$MODE" = repro ]; then
    "${RUN_ENV[@]}" "$PY" fuzz_cdecoder.py -runs=1 "${FILES[@]}"
    exit
fi

LOG=logs/run-$(date -u +%Y%m%dT%H%M%SZ).log
echo "== fuzzing for $MODE s, log in fuzz/$LOG" >&2
# One process (no -jobs/-workers): one core. corpus/ collects new inputs; seeds/ is read.
set +e
"${RUN_ENV[@]}" "$PY" fuzz_cdecoder.py \
    -max_total_time="$MODE" -max_len=8192 -timeout=60 -rss_limit_mb=4096 \
    -dict=sse.dict -artifact_prefix=artifacts/ -print_final_stats=1 \
    "$@" corpus seeds 2>&1 | tee "$LOG"
STATUS=${PIPESTATUS[0]}
exit "$STATUS"
