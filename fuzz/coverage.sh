#!/usr/bin/env bash
# Line and branch coverage of _cdecoder.c by the fuzz corpus (fuzz/corpus + fuzz/seeds).
#
#   bash fuzz/coverage.sh            summary; `bash fuzz/coverage.sh show` also prints
#                                    the source with the lines no input reached marked
#
# Compiles the extension with clang source-based coverage (no sanitizers) into a staged
# copy of the package under $TOKENRELAY_FUZZ_HOME (/tmp/tokenrelay-fuzz), replays every
# input through sse_case.py with the interpreter that run.sh's venv uses, and reports.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${TOKENRELAY_FUZZ_HOME:-/tmp/tokenrelay-fuzz}
PY=$WORK/venv/bin/python
STAGE=$WORK/cov-pkg
[ -x "$PY" ] || { echo "run fuzz/run.sh first (it makes $WORK/venv)" >&2; exit 1; }
LLVM=$(dirname "$(readlink -f "$(command -v clang)")")

read -r INCLUDE SUFFIX < <("$PY" -c \
    'import sysconfig as s; print(s.get_paths()["include"], s.get_config_var("EXT_SUFFIX"))')
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r "$ROOT/src/tokenrelay" "$STAGE/"
find "$STAGE" \( -name '*.so' -o -name '*.pyc' \) -delete
SO=$STAGE/tokenrelay/sse/_cdecoder$SUFFIX
SRC=$ROOT/src/tokenrelay/sse/_cdecoder.c
clang -g -O0 -fPIC -shared -fprofile-instr-generate -fcoverage-mapping -I"$INCLUDE" "$SRC" -o "$SO"

PROFILE=$WORK/cov.profraw
rm -f "$PROFILE" "$WORK/.coverage"
# And the reference's coverage (decoder.py, with branches) by coverage.py, if installed.
PYCOV=()
"$PY" -c 'import coverage' 2>/dev/null && PYCOV=(-m coverage run --branch
    --data-file="$WORK/.coverage" --include="*/tokenrelay/sse/decoder.py")
LLVM_PROFILE_FILE=$PROFILE PYTHONPATH=$STAGE:$HERE \
    "$PY" "${PYCOV[@]}" "$HERE/replay.py" "$HERE/corpus" "$HERE/seeds"
"$LLVM/llvm-profdata" merge -o "$WORK/cov.profdata" "$PROFILE"
"$LLVM/llvm-cov" report "$SO" -instr-profile="$WORK/cov.profdata" "$SRC"
if [ "${1:-}" = show ]; then
    echo "== lines of _cdecoder.c no input reached"
    "$LLVM/llvm-cov" show "$SO" -instr-profile="$WORK/cov.profdata" "$SRC" \
        -show-line-counts-or-regions | grep -E '^ +[0-9]+\| +0\|' || true
    echo "== branches of _cdecoder.c taken one way only"
    "$LLVM/llvm-cov" show "$SO" -instr-profile="$WORK/cov.profdata" "$SRC" -show-branches=count \
        | awk '/^ +[0-9]+\|/ {line = $0; next} /Branch.*(True: 0|False: 0)/ {print line " ## " $0}'
fi
if [ ${#PYCOV[@]} -gt 0 ]; then
    "$PY" -m coverage report --data-file="$WORK/.coverage" -m
fi
