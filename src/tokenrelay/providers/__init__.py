"""Upstream adapters: one attempt at one generation, as neutral deltas.

``PROVIDER_KINDS`` maps each provider kind to what builds it from a ``ProviderConfig``;
``create_provider(config)`` looks the kind up. Every HTTP upstream is one class,
``HTTPProvider``, over a table of kinds (``HTTP_KINDS``: ``openai``, ``anthropic``,
``gemini``, ``ollama``); the OpenAI-compatible long tail (vLLM, llama.cpp server, LM Studio,
Ollama's ``/v1``) is kind ``openai`` with its own ``base_url``. ``mock`` is the fake LLM
in-process; ``local`` runs a model in-process (llama.cpp, from the ``local`` extra). The contract
every provider keeps is ``Provider``'s, in ``base.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import RETRYABLE_KINDS, Provider, ProviderConfig, UpstreamError
from .http import KINDS as HTTP_KINDS
from .http import HTTPProvider
from .local import LocalProvider
from .mock import MockProvider

__all__ = [
    "HTTP_KINDS",
    "PROVIDER_KINDS",
    "RETRYABLE_KINDS",
    "HTTPProvider",
    "LocalProvider",
    "MockProvider",
    "Provider",
    "ProviderConfig",
    "UpstreamError",
    "create_provider",
]

PROVIDER_KINDS: dict[str, Callable[[ProviderConfig], Provider]] = {
    **dict.fromkeys(HTTP_KINDS, HTTPProvider),
    "local": LocalProvider,  # imports xllamacpp only when a local provider is built
    "mock": MockProvider,
}
"""Every provider kind, and what builds it: the only list of them (configuration asks it)."""


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
