"""Upstream adapters: one attempt at one generation, as neutral deltas.

``PROVIDER_KINDS`` maps each provider kind to what builds it from a ``ProviderConfig``;
``create_provider(config)`` looks the kind up. Every HTTP upstream is one class,
``HTTPProvider``, over a table of kinds (``HTTP_KINDS``: ``openai``, ``anthropic``,
``gemini``, ``ollama``); the OpenAI-compatible long tail (vLLM, llama.cpp server, LM Studio,
Ollama's ``/v1``) is kind ``openai`` with its own ``base_url``. ``mock`` is the fake LLM
in-process; ``local`` runs a model in-process (when its module is there). The contract
every provider keeps is ``Provider``'s, in ``base.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Provider, ProviderConfig, UpstreamError
from .http import KINDS as HTTP_KINDS
from .http import HTTPProvider
from .mock import MockProvider

__all__ = [
    "HTTP_KINDS",
    "PROVIDER_KINDS",
    "HTTPProvider",
    "MockProvider",
    "Provider",
    "ProviderConfig",
    "UpstreamError",
    "create_provider",
]

PROVIDER_KINDS: dict[str, Callable[[ProviderConfig], Provider]] = {
    **dict.fromkeys(HTTP_KINDS, HTTPProvider),
    "mock": MockProvider,
}


def _register_local() -> None:
    # `local` (in-process llama.cpp, providers/local.py) registers here when its module
    # exists; xllamacpp itself is imported only when a local provider is built.
    try:
        from .local import LocalProvider  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.local":
            raise  # local.py is there but broken: say so
        return
    PROVIDER_KINDS["local"] = LocalProvider


_register_local()


def create_provider(config: ProviderConfig) -> Provider:
    """The provider ``config`` describes (``ValueError`` naming the known kinds for an
    unknown one)."""
    factory = PROVIDER_KINDS.get(config.kind)
    if factory is None:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ValueError(
            f"provider {config.name!r} has unknown kind {config.kind!r}; known kinds: {known}"
        )
    return factory(config)
