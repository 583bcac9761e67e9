"""The exceptions tokenrelay raises, rooted at one base class.

Every error tokenrelay raises on purpose is a ``TokenRelayError``; catch that to catch
them all. Foreign exceptions (from httpx, asyncio, servers) are mapped onto this tree at
the boundary where they enter, so callers never need to know which library was underneath.

::

    TokenRelayError                 base of everything raised on purpose
     ├── ProtocolError              the bytes on the wire break a rule or a limit
     │    └── RemoteProtocolError   ... and the remote peer sent them
     │         └── EventTooLargeError  a line or an event exceeds the decoder's limit
     ├── ResponseError              the server answered, but not with an event stream
     ├── RequestError               a request body is not a valid request of its dialect
     ├── TransportError             the connection failed, broke or went quiet
     │    ├── ConnectError          no connection could be made
     │    ├── ReadError             the connection broke while reading
     │    ├── IdleTimeoutError      no bytes (not even a comment) for too long
     │    └── ReconnectError        reconnecting gave up; the cause is the last failure
     ├── StoreError                 a stream store refused an operation (tokenrelay.store)
     │    ├── StreamNotFoundError   no stream has this id (also a KeyError)
     │    ├── StreamExistsError     a stream with this id exists already
     │    ├── StreamFinishedError   the stream is finished: nothing more can be appended
     │    ├── StoreLimitError       that many streams are running already
     │    └── StoreUnavailableError the store cannot be reached now; it may be later
     ├── UpstreamError              an upstream attempt failed before its first delta
     │                              (tokenrelay.providers: ``error``, ``retryable``,
     │                              ``retry_after``)
     └── ConfigError                the gateway's configuration is invalid
                                    (tokenrelay.gateway)

The last three live in the layer that raises them (this module is below every layer),
and are drawn here so that the whole tree is in one place.

Arguments that a caller gets wrong (an ``id`` with a newline handed to the encoder, say)
raise the built-in ``ValueError`` or ``TypeError``, as Python APIs do: that is a bug in
the calling code, not a condition to handle at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Literal

__all__ = [
    "ConnectError",
    "EventTooLargeError",
    "IdleTimeoutError",
    "ProtocolError",
    "ReadError",
    "ReconnectError",
    "RemoteProtocolError",
    "RequestError",
    "ResponseError",
    "TokenRelayError",
    "TransportError",
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


class ResponseError(TokenRelayError):
    """The server answered with a status other than 200 or a type other than SSE.

    Never retried: per the spec this fails the stream. ``status``, ``content_type`` and
    ``body`` (the first bytes of the response, at most 1 KiB) tell what came instead.
    """

    def __init__(self, status: int, content_type: str | None, body: bytes = b"") -> None:
        self.status = status
        self.content_type = content_type
        self.body = body[:1024]
        if status != 200:
            problem = f"HTTP status {status}, not 200"
        else:
            problem = f"content type {content_type!r}, not 'text/event-stream'"
        preview = self.body[:200].decode("utf-8", "replace")
        super().__init__(
            f"not an event stream: {problem} (content type {content_type!r}); "
            f"body starts: {preview!r}"
        )

    def __reduce__(self) -> tuple[type[ResponseError], tuple[int, str | None, bytes]]:
        return (type(self), (self.status, self.content_type, self.body))


class RequestError(TokenRelayError):
    """A request body is not a valid request of its dialect (bad JSON, a wrong type, a
    missing field). ``status`` is the HTTP status to answer with (400, or 413 for a body
    over the limit); ``param`` names the offending field when one is to blame. Servers
    answer it in the caller's own dialect.
    """

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        self.message = message
        self.param = param
        self.status = status
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_request_error, (self.message, self.param, self.status))


def _request_error(message: str, param: str | None, status: int) -> RequestError:
    return RequestError(message, param=param, status=status)


class TransportError(TokenRelayError):
    """The connection failed, broke or went quiet: worth reconnecting."""


class ConnectError(TransportError):
    """No connection could be made (refused, unreachable, or the connect timeout)."""


class ReadError(TransportError):
    """The connection broke while the stream was being read."""


class IdleTimeoutError(TransportError):
    """Nothing arrived, not even a keep-alive comment, within the idle timeout."""


class ReconnectError(TransportError):
    """Reconnecting gave up: too many attempts, or past the deadline.

    ``attempts`` is how many reconnections were tried since the stream last delivered
    an event; ``__cause__`` is the last failure (None when the body just kept ending).
    """

    def __init__(self, message: str, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ReconnectError], tuple[str, int]]:
        return (type(self), (str(self), self.attempts))
