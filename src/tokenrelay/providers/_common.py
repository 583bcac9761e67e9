"""What the HTTP and in-process providers decide alike."""

from __future__ import annotations

from ..llm.model import ErrorKind, StreamError

# The error a stream cut after its first delta ends with.
EARLY_CLOSE = StreamError(ErrorKind.SERVER, "upstream closed the stream early", 502)

# Errors worth another attempt when an upstream reports them before the first delta.
RETRYABLE_KINDS = frozenset(
    {ErrorKind.SERVER, ErrorKind.OVERLOADED, ErrorKind.RATE_LIMIT, ErrorKind.TIMEOUT}
)


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status is worth another attempt (as the OpenAI SDK decides)."""
    return status in (408, 409, 429) or status >= 500
