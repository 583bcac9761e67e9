"""tokenrelay: Server-Sent Events for LLM token streams, from the wire to the gateway.

``import tokenrelay`` loads the standard library only; clients, servers and the gateway
live in subpackages whose optional dependencies load when those are imported.
"""

from .errors import EventTooLargeError, ProtocolError, RemoteProtocolError, TokenRelayError
from .sse import Decoder, Event, comment, encode

__all__ = [
    "Decoder",
    "Event",
    "EventTooLargeError",
    "ProtocolError",
    "RemoteProtocolError",
    "TokenRelayError",
    "__version__",
    "comment",
    "encode",
]

__version__ = "0.1.0"
