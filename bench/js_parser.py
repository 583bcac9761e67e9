"""Side-by-side JavaScript SSE parsers: tokenrelay's ``SSEParser`` (src/tokenrelay/web/sse.js)
against ``eventsource-parser`` (npm), on exactly the workloads of the Python parser
benchmark (``bench/parser.py``: the same bytes, cut into the same chunks), in one Node run.

Each parser is driven through its users' whole bytes -> events path: ours takes the
``Uint8Array`` chunks; eventsource-parser takes text, so its path includes a streaming
``TextDecoder`` (how its users feed it a fetch body). Each run feeds every chunk and counts
the events; the warm-up run checks every event's data against the workload's. Best of N
runs (N adaptive, as in parser.py), both parsers alternating in the same process.

    python bench/js_parser.py            # full sizes; markdown table on stdout
    python bench/js_parser.py --quick    # smaller sizes, fewer runs

Needs node and ``npm install eventsource-parser`` in $TOKENRELAY_NODE_DEPS (.ci/run does),
or ``--deps DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from parser import DEFAULT_FIXTURE, QUICK, Config, build_workloads

HERE = Path(__file__).parent
SCRIPT = HERE / "js_parser.mjs"
KEYS = {"a", "b", "c", "d", "e", "f"}


def write_workloads(cfg: Config, directory: Path) -> None:
    workloads, note = build_workloads(cfg, KEYS, DEFAULT_FIXTURE)
    manifest = []
    for w in workloads:
        blob = directory / f"{w.key}.bin"
        blob.write_bytes(b"".join(w.chunks))
        (directory / f"{w.key}.expected.json").write_text(json.dumps(w.expected))
        manifest.append(
            {
                "key": w.key,
                "title": w.title,
                "sizes": [len(c) for c in w.chunks],
                "blob": blob.name,
                "expected": f"{w.key}.expected.json",
                "nbytes": w.nbytes,
            }
        )
    (directory / "manifest.json").write_text(json.dumps({"note": note, "workloads": manifest}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--deps", default=os.environ.get("TOKENRELAY_NODE_DEPS", ""))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None or not args.deps:
        print("needs node, and --deps or TOKENRELAY_NODE_DEPS", file=sys.stderr)
        return 2
    cfg = QUICK if args.quick else Config()
    with tempfile.TemporaryDirectory() as tmp:
        write_workloads(cfg, Path(tmp))
        run = subprocess.run(
            [node, str(SCRIPT), tmp, "--quick" if args.quick else "--full"],
            env={**os.environ, "TOKENRELAY_NODE_DEPS": args.deps},
            capture_output=True,
            text=True,
            check=False,
        )
    if run.returncode != 0:
        print(run.stdout, run.stderr, file=sys.stderr)
        return 1
    result = json.loads(run.stdout)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(
        f"Node {result['node']}, eventsource-parser {result['peer_version']}, "
        f"{platform.machine()}, {'quick' if args.quick else 'full'} sizes\n"
    )
    print("| workload | tokenrelay MB/s | eventsource-parser MB/s | ratio (ours/peer) |")
    print("|---|---:|---:|---:|")
    worst = None
    for row in result["rows"]:
        ratio = row["ours_mbs"] / row["peer_mbs"]
        worst = ratio if worst is None else min(worst, ratio)
        peer = f"{row['peer_mbs']:.1f}" + ("" if row["peer_ok"] else " (wrong output)")
        print(f"| ({row['key']}) {row['title']} | {row['ours_mbs']:.1f} | {peer} | {ratio:.2f}x |")
    print(f"\nslowest ratio: {worst:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
