"""What the HTTP and in-process providers decide alike."""

from __future__ import annotations

from ..llm.model import ErrorKind, StreamError

# The error a stream cut after its first delta ends with.
EARLY_CLOSE = StreamError(ErrorKind.SERVER, "upstream closed the stream early", 502)


def refused(provider: str, status: int) -> StreamError | None:
    """The error for an upstream that answers a redirect or refuses the gateway's own
    credentials (401, 403): a 502, the gateway's problem, never the client's 401 (whose
    SDK would blame the client's key). None for any other status."""
    if status in (401, 403):
        what = f"refused the gateway's credentials ({status})"
    elif 300 <= status < 400:
        what = f"answered a redirect ({status}), which the gateway does not follow"
    else:
        return None
    return StreamError(ErrorKind.SERVER, f"upstream {provider} {what}", 502)


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status is worth another attempt (as the OpenAI SDK decides)."""
    return status in (408, 409, 429) or status >= 500
