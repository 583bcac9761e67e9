"""The LLM streaming gateway (``tokenrelay serve``): ``create_app(config)`` gives an ASGI
app with OpenAI- and Anthropic-compatible endpoints in front of the configured upstreams."""

from .app import Gateway, create_app
from .config import (
    ConfigError,
    GatewayConfig,
    ModelRoute,
    RetryPolicy,
    Timeouts,
    default_config,
    load_config,
    parse_config,
)
from .web import web_routes

__all__ = [
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "ModelRoute",
    "RetryPolicy",
    "Timeouts",
    "create_app",
    "default_config",
    "load_config",
    "parse_config",
    "web_routes",
]
