from ..errors import EventTooLargeError
from .decoder import PyDecoder
from .event import Event

Decoder: type[PyDecoder]  # the same interface and behaviour, in C

def _setup(event: type[Event], error: type[EventTooLargeError], /) -> None: ...
