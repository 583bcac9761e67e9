"""The JavaScript parts that need npm packages (express, typescript), which .ci/run installs
into a directory named by ``TOKENRELAY_NODE_DEPS``: the Node server side in a real Express
app; the Express example (examples/express_proxy) end to end between the real gateway and
a real client, with a cut on each side of it and the resumes; the package's types checked
by ``tsc``. Under ``CI`` a missing node or package is a failure; elsewhere a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.asgi_servers import free_port
from tests.cutting_proxy import CuttingProxy
from tests.gateway_procs import gateway_toml, procs_running
from tests.required import missing
from tokenrelay.client import connect
from tokenrelay.sse import ReconnectPolicy

ROOT = Path(__file__).parent.parent
HOOK = "./tests/js/resolve_deps.mjs"  # resolves "express", "tokenrelay/server" as installed
EXAMPLE = ROOT / "examples" / "express_proxy" / "server.mjs"


def node_deps(*packages: str) -> tuple[str, Path]:
    """node, and the directory whose node_modules holds ``packages``."""
    node = shutil.which("node")
    deps = os.environ.get("TOKENRELAY_NODE_DEPS")
    absent = [p for p in packages if not deps or not (Path(deps) / "node_modules" / p).is_dir()]
    if node is None or absent:
        wanted = " ".join(absent)
        reason = (
            "node is not installed"
            if node is None
            else f"set TOKENRELAY_NODE_DEPS to a directory where `npm install {wanted}` ran"
        )
        missing(reason)
    assert deps is not None
    return node, Path(deps)


def run_node(args: list[str], deps: Path, timeout: float = 110) -> None:
    result = subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "TOKENRELAY_NODE_DEPS": str(deps)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


def test_node_server_side_passes_its_suite_in_a_real_express_app() -> None:
    node, deps = node_deps("express")
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/js/npm").glob("*.test.mjs"))
    assert files
    run_node([node, "--import", HOOK, "--test", *files], deps)


def test_package_types_check_with_tsc(tmp_path: Path) -> None:
    """The .d.ts files are valid, and a strict TypeScript user of every entry point
    (resolved through package.json "exports", as from node_modules) type-checks."""
    node, deps = node_deps("typescript")
    modules = tmp_path / "node_modules"
    modules.mkdir()
    (modules / "tokenrelay").symlink_to(ROOT / "src" / "tokenrelay" / "web")
    shutil.copy(ROOT / "tests" / "js" / "types" / "consumer.ts", tmp_path / "consumer.ts")
    (tmp_path / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "target": "es2022",
                    "module": "nodenext",
                    "moduleResolution": "nodenext",
                    "lib": ["es2022", "dom"],
                    "types": [],
                    "skipLibCheck": False,
                    "preserveSymlinks": True,
                },
                "files": ["consumer.ts"],
            }
        )
    )
    tsc = deps / "node_modules" / "typescript" / "bin" / "tsc"
    result = subprocess.run(
        [node, str(tsc), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


# --- the Express example, end to end ---------------------------------------------------

PROMPT = " ".join(f"word{i}" for i in range(80))
KEY = "sk-test-kept-on-the-server"


def test_express_example_relays_the_gateway_with_a_cut_on_each_side_and_resumes(
    tmp_path: Path,
) -> None:
    node, deps = node_deps("express")
    config = gateway_toml(
        gateway={"drain_seconds": 0, "api_keys_env": "KEYS"},
        provider={"name": "m", "kind": "mock", "options": {"token_ms": 10}},
        models={"echo": "m:echo"},
    )
    with procs_running(tmp_path) as procs:
        gateway = procs.gateway("gw", config, env={"KEYS": KEY})
        # The gateway's first stream is cut after ~2 KB (a few chunks in): the example
        # resumes it from /v1/streams/{id}. The browser side's first connection is cut
        # after ~700 bytes: the client resumes with Last-Event-ID.
        upstream_cut = CuttingProxy(gateway.port, [2000])
        browser_cut = None
        with upstream_cut.running() as upstream:
            port = free_port()
            example = procs._start(
                "example",
                [node, "--import", HOOK, str(EXAMPLE)],
                port,
                env={
                    "TOKENRELAY_NODE_DEPS": str(deps),
                    "PORT": str(port),
                    "UPSTREAM_BASE_URL": upstream + "/v1",
                    "OPENAI_API_KEY": KEY,
                    "MODEL": "echo",
                },
            )
            example.wait_ready("/")
            assert KEY not in httpx.get(example.url + "/").text
            started = httpx.post(example.url + "/api/chat", json={"prompt": PROMPT}, timeout=10)
            assert started.status_code == 201, started.text
            answer = started.json()
            assert KEY not in started.text
            browser_cut = CuttingProxy(port, [700])
            with browser_cut.running() as front:
                text, ids, done = "", [], None
                policy = ReconnectPolicy(delay=0.05)
                with connect(f"{front}/{answer['events']}", reconnect=policy) as events:
                    for event in events:
                        ids.append(event.id)
                        if event.event == "token":
                            text += event.json()["text"]
                        else:
                            assert event.event == "done", event.data
                            done = event.json()
                            break
                # The answer is complete: coming back after its last id gets a 204.
                again = httpx.get(
                    f"{front}/{answer['events']}",
                    headers={"Last-Event-ID": ids[-1]},
                    timeout=10,
                )
                assert again.status_code == 204
        assert text == PROMPT
        assert ids == [str(i) for i in range(len(ids))]  # nothing lost, nothing twice
        assert done == {"finish": "stop", "usage": done["usage"]} and done["usage"]["output"] > 0
        # One generation, resumed once (counted by requests: undici may open a connection
        # it never sends on after aborting a body it stopped reading).
        sent = [line.split()[1].rsplit("/", 1)[0] for line in upstream_cut.requests]
        assert sent == ["/v1/chat", "/v1/streams"], upstream_cut.requests
        assert browser_cut.connections >= 2, "the client was not cut"
        unknown = httpx.get(example.url + "/api/chat/nope/events", timeout=10)
        assert unknown.status_code == 404
