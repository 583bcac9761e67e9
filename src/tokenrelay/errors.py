"""The exceptions tokenrelay raises, rooted at one base class.

Every error tokenrelay raises on purpose is a ``TokenRelayError``; catch that to catch
them all. Foreign exceptions (from httpx, asyncio, servers) are mapped onto this tree at
the boundary where they enter, so callers never need to know which library was underneath.

::

    TokenRelayError                 base of everything raised on purpose
     └── ProtocolError              the bytes on the wire break a rule or a limit
          └── RemoteProtocolError   ... and the remote peer sent them
               └── EventTooLargeError  a line or an event exceeds the decoder's limit

Arguments that a caller gets wrong (an ``id`` with a newline handed to the encoder, say)
raise the built-in ``ValueError`` or ``TypeError``, as Python APIs do: that is a bug in
the calling code, not a condition to handle at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Literal

__all__ = [
    "EventTooLargeError",
    "ProtocolError",
    "RemoteProtocolError",
    "TokenRelayError",
]


class TokenRelayError(Exception):
    """Base class of every exception tokenrelay raises on purpose."""


class ProtocolError(TokenRelayError):
    """The bytes on the wire break a rule of the protocol or a configured limit."""


class RemoteProtocolError(ProtocolError):
    """The remote peer sent bytes that break a rule or a limit: the fault is theirs."""


class EventTooLargeError(RemoteProtocolError):
    """A line or an event is larger than the decoder accepts.

    Raised instead of buffering without bound. ``what`` says which limit was crossed
    (``"line"`` or ``"event"``), ``limit`` is that limit in bytes, and ``size`` how many
    bytes had been buffered when the decoder gave up.
    """

    def __init__(self, what: Literal["line", "event"], limit: int, size: int) -> None:
        self.what: Literal["line", "event"] = what
        self.limit = limit
        self.size = size
        setting = "max_line_bytes" if what == "line" else "max_event_bytes"
        super().__init__(
            f"SSE {what} exceeds the limit of {limit} bytes ({size} bytes buffered); "
            f"raise {setting} if such {what}s are expected"
        )

    def __reduce__(self) -> tuple[type[EventTooLargeError], tuple[str, int, int]]:
        return (type(self), (self.what, self.limit, self.size))
