"""The LLM streaming gateway (``tokenrelay serve``). Under construction: the configuration
is here; ``create_app`` follows."""

from .config import (
    ConfigError,
    GatewayConfig,
    ModelRoute,
    RetryPolicy,
    Timeouts,
    load_config,
    parse_config,
)

__all__ = [
    "ConfigError",
    "GatewayConfig",
    "ModelRoute",
    "RetryPolicy",
    "Timeouts",
    "load_config",
    "parse_config",
]
