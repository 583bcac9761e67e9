"""tokenrelay: Server-Sent Events for LLM token streams, from the wire to the gateway.

``import tokenrelay`` loads the standard library only; clients, servers and the gateway
live in subpackages whose optional dependencies load when those are imported.
"""

from .errors import (
    ConnectError,
    EventTooLargeError,
    IdleTimeoutError,
    ProtocolError,
    ReadError,
    ReconnectError,
    RemoteProtocolError,
    RequestError,
    ResponseError,
    TokenRelayError,
    TransportError,
)
from .sse import Decoder, Event, ReconnectPolicy, comment, encode

__all__ = [
    "ConnectError",
    "Decoder",
    "Event",
    "EventTooLargeError",
    "IdleTimeoutError",
    "ProtocolError",
    "ReadError",
    "ReconnectError",
    "ReconnectPolicy",
    "RemoteProtocolError",
    "RequestError",
    "ResponseError",
    "TokenRelayError",
    "TransportError",
    "__version__",
    "comment",
    "encode",
]

__version__ = "0.1.0"
