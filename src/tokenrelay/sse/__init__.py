"""The SSE protocol core: events, a decoder and an encoder. Standard library only, no I/O.

>>> from tokenrelay.sse import Decoder, encode
>>> Decoder().feed(encode("hello", id="1"))
[Event(data='hello', event='message', id='1', retry=None)]
"""

from .decoder import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder
from .encoder import comment, encode
from .event import Event
from .reconnect import NO_RECONNECT, Reconnector, ReconnectPolicy

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "NO_RECONNECT",
    "Decoder",
    "Event",
    "ReconnectPolicy",
    "Reconnector",
    "comment",
    "encode",
]
