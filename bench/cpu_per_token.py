"""The gateway's CPU per relayed token and what its users feel, side by side in one run:
the load client straight at the upstream (``direct``: the harness's own ceiling), a byte
relay on uvloop (``floor``: what any Python relay pays per token on this machine), the
same relay doing tokenrelay's decoding and encoding in its callbacks (``codecs``: what
this design could cost without tasks, stores or metrics; both in ``relay_floor.py``),
``tokenrelay serve`` from this checkout and, with ``--baseline``, from another source
tree (an earlier commit's ``src``), all at the same load.

``bench/harness``'s C upstream (64 tokens at 20 ms) and C load client (c streams, all
started within 1 s) share CPU 0; the contestant runs alone on CPU 1. Per level, the
contestants take turns, ``--repeat`` times, so that a drift of the machine falls on all.

    python bench/cpu_per_token.py [--streams 256,384,512,768,1024] [--repeat 2]
        [--baseline /tmp/tokenrelay-old/src]

Figures per contestant and level (medians over the repeats): CPU µs per relayed token
(user + system, request handling included), its kernel share, reads and writes (system
calls) per token, time to first token p50 and p99, inter-token gap p99 and max, and
"held": every stream complete, TTFT p99 ≤ 1 s, no gap over 200 ms. The raw JSON goes to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    HARNESS,
    REPO_ROOT,
    cpu_ticks,
    git,
    harness_gateway_config,
    print_medians,
    start_harness_upstream,
    syscalls,
    wait_port,
)

BENCH = Path(__file__).parent
UPSTREAM_PORT, GATEWAY_PORT = 19111, 19112
TOKENS, TOKEN_MS = 64, 20
SUMMARY = re.compile(
    r"ok (?P<ok>\d+), errors (?P<errors>\d+), ttft p50 (?P<ttft50>[-\d.]+) p99 (?P<ttft99>[-\d.]+)"
    r" ms, gap p50 (?P<gap50>[-\d.]+) p99 (?P<gap99>[-\d.]+) max (?P<gapmax>[-\d.]+) ms"
)


NGINX_CONF = """worker_processes 1;
error_log stderr error;
pid nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""
"""``nginx``: a proxy in C (Debian's nginx, one worker), kept-alive upstream connections,
nothing buffered: what a relay written in C adds in this harness (the one-client figure)."""


def contestant_command(
    name: str, config: Path, baseline: str | None, port: int = GATEWAY_PORT
) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if name == "nginx":
        work = config.parent / "nginx"
        (work / "logs").mkdir(parents=True, exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(upstream=UPSTREAM_PORT, port=port))
        return ["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"], env
    if name.partition(" ")[0] in ("floor", "codecs"):  # "floor kept": keep-alive upstream
        mode = "codecs" if name.startswith("codecs") else "bytes"
        keep = ["keep"] if name.endswith(" kept") else []
        return [sys.executable, str(BENCH / "relay_floor.py"), str(port),
                str(UPSTREAM_PORT), mode, *keep], env  # fmt: skip
    if name == "baseline":
        assert baseline is not None
        env["PYTHONPATH"] = baseline
    serve = ["-m", "tokenrelay", "serve", "--config", str(config), "--port", str(port),
             "--log-level", "warning"]  # fmt: skip
    return [sys.executable, *serve], env


def run_once(name: str, streams: int, config: Path, baseline: str | None) -> dict[str, Any]:
    """One contestant at one level: its figures."""
    proc = None
    port = UPSTREAM_PORT
    if name != "direct":
        command, env = contestant_command(name, config, baseline)
        proc = subprocess.Popen(
            ["taskset", "-c", "1", *command], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port = GATEWAY_PORT
    try:
        if proc is not None:
            wait_port(GATEWAY_PORT, name)
            time.sleep(1)
            ticks0, calls0 = cpu_ticks(proc.pid), syscalls(proc.pid)
        load = subprocess.run(
            ["taskset", "-c", "0", str(HARNESS / "load"), str(port), str(streams), "1", "m",
             "x", str(TOKENS), str(TOKEN_MS), "12"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        figures: dict[str, Any] = {}
        if proc is not None:
            ticks1, calls1 = cpu_ticks(proc.pid), syscalls(proc.pid)
            user, system = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
            figures.update(cpu_s=(user + system) / os.sysconf("SC_CLK_TCK"),
                           kernel=system / max(1, user + system),
                           reads=calls1[0] - calls0[0], writes=calls1[1] - calls0[1])  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    result = json.loads(load.stdout)
    relayed = sum(len(r["times_ms"]) for r in result["runs"])
    match = SUMMARY.search(load.stderr)
    assert match is not None, load.stderr
    summary = {k: float(v) for k, v in match.groupdict().items()}
    figures.update(summary, relayed=relayed, streams=streams)
    if "cpu_s" in figures:
        figures["us_per_token"] = figures["cpu_s"] / max(1, relayed) * 1e6
        figures["reads_per_token"] = figures["reads"] / max(1, relayed)
        figures["writes_per_token"] = figures["writes"] / max(1, relayed)
    figures["held"] = (
        summary["ok"] == streams and summary["ttft99"] <= 1000 and summary["gapmax"] <= 200
    )
    return figures


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def first_token_ms(port: int) -> float:
    """One stream of the load client: ms from its request to its first content event."""
    out = subprocess.run(
        ["taskset", "-c", "0", str(HARNESS / "load"), str(port), "1", "0", "m", "x", "4",
         str(TOKEN_MS), "2"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    run = json.loads(out)["runs"][0]
    return float(run["times_ms"][0] - run["sent_ms"])


def one_client(n: int, baseline: str | None) -> None:
    """Time to first token at one client: direct, the two floors (what any Python relay
    adds: two more loopback hops, each waking a sleeping process), tokenrelay (and the
    baseline), each request in turn (the order rotating: a fixed one favoured the first gateway by
    0.15 ms in an A/A run), after a warm-up; medians and p90s, and what the gateway adds."""
    work = Path(tempfile.mkdtemp(prefix="tokenrelay-ttft-"))
    config = harness_gateway_config(work, UPSTREAM_PORT)
    upstream = start_harness_upstream(UPSTREAM_PORT, 4, TOKEN_MS)
    names = ["floor", "floor kept", "codecs", "codecs kept", "tokenrelay"]
    names += ["baseline"] if baseline else []
    names += ["nginx"] if shutil.which("nginx") else []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {"direct": UPSTREAM_PORT}
    try:
        wait_port(UPSTREAM_PORT, "the upstream")
        for i, name in enumerate(names):
            port = GATEWAY_PORT + i
            command, env = contestant_command(name, config, baseline, port)
            procs[name] = subprocess.Popen(
                ["taskset", "-c", "1", *command], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            ports[name] = port
            wait_port(port, name)
        times: dict[str, list[float]] = {name: [] for name in ports}
        order = list(ports)
        for i in range(n + 5):
            order = order[1:] + order[:1]  # each in every position: the turn's order matters
            for name in order:
                ms = first_token_ms(ports[name])
                if i >= 5:  # warm-up: first connections, first-use caches
                    times[name].append(ms)
    finally:
        for proc in [*procs.values(), upstream]:
            proc.terminate()
            proc.wait(10)
    print(f"time to first token at one client, {n} requests each, in turn (ms):\n")
    print_medians(times, "direct", "contestant", 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="256,384,512,768,1024")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline", help="another tokenrelay source tree (its src folder)")
    parser.add_argument(
        "--one-client", type=int, default=0, metavar="N",
        help="instead: time to first token at one client, N requests per contestant in turn",
    )  # fmt: skip
    parser.add_argument(
        "--only", help="a comma-separated subset of direct,floor,codecs,tokenrelay,baseline"
    )
    parser.add_argument(
        "--pace-ms", type=float, help="the gateways' [gateway] pace_ms (default: theirs)"
    )
    args = parser.parse_args()
    subprocess.run(["make", "-s", "-C", str(HARNESS)], check=True)
    if args.one_client:
        one_client(args.one_client, args.baseline)
        return
    levels = [int(n) for n in args.streams.split(",")]
    names = ["direct", "floor", "codecs", "tokenrelay"] + (["baseline"] if args.baseline else [])
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    work = Path(tempfile.mkdtemp(prefix="tokenrelay-cpu-"))
    config = harness_gateway_config(work, UPSTREAM_PORT, args.pace_ms)
    upstream = start_harness_upstream(UPSTREAM_PORT, TOKENS, TOKEN_MS)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()[0]
    try:
        wait_port(UPSTREAM_PORT, "the upstream")
        for streams in levels:
            for _ in range(args.repeat):
                for name in names:
                    figures = run_once(name, streams, config, args.baseline)
                    runs.setdefault((name, streams), []).append(figures)
                    print(f"{name} c={streams}: {fmt(figures.get('us_per_token'), '.1f')} µs/token,"
                          f" ttft p99 {figures['ttft99']:.0f} ms", file=sys.stderr)  # fmt: skip
    finally:
        upstream.terminate()
        upstream.wait(10)
    label = {
        "baseline": f"tokenrelay (baseline: {args.baseline})",
        "floor": "floor: bytes relayed",
        "codecs": "floor: tokenrelay's codecs in callbacks",
    }
    print(f"- date: {started}; load average at start {load_start:.2f}, at the end "
          f"{os.getloadavg()[0]:.2f}; commit {git('rev-parse', '--short', 'HEAD')}"
          f"{' (uncommitted changes)' if git('status', '--porcelain', 'src') else ''}")  # fmt: skip
    print(
        f"- {TOKENS} tokens at {TOKEN_MS} ms per stream, all started within 1 s; medians of "
        f"{args.repeat} runs; contestant on CPU 1, upstream and load client on CPU 0\n"
    )
    print(
        "| streams | contestant | µs/token | kernel | reads/token | writes/token | TTFT p50 "
        "| TTFT p99 | gap p99 | gap max | held |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for streams in levels:
        for name in names:
            rs = runs[(name, streams)]
            held = sum(r["held"] for r in rs)
            kernel = median(rs, "kernel")
            print(
                f"| {streams:,} | {label.get(name, name)}"
                f" | {fmt(median(rs, 'us_per_token'), '.1f')}"
                f" | {'-' if kernel is None else f'{100 * kernel:.0f}%'}"
                f" | {fmt(median(rs, 'reads_per_token'), '.2f')}"
                f" | {fmt(median(rs, 'writes_per_token'), '.2f')}"
                f" | {fmt(median(rs, 'ttft50'), '.1f')} | {fmt(median(rs, 'ttft99'), '.1f')}"
                f" | {fmt(median(rs, 'gap99'), '.2f')} | {fmt(median(rs, 'gapmax'), '.1f')}"
                f" | {held}/{len(rs)} |"
            )
    out = REPO_ROOT / "bench" / "results" / time.strftime("cpu-%Y-%m-%d-%H%M.json", time.gmtime())
    out.write_text(json.dumps(
        {"started": started, "levels": levels, "baseline": args.baseline, "pace_ms": args.pace_ms,
         "runs": {f"{n}@{c}": rs for (n, c), rs in runs.items()}}, indent=1))  # fmt: skip
    print(f"\nraw JSON: {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
