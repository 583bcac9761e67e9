"""LLM stream dialects: one neutral delta model and a codec per wire dialect.

Sans-IO like the SSE core: codecs turn bytes into typed deltas and deltas into frames,
and never touch a socket or a clock. ``DIALECTS`` maps each dialect's name to its codec:

==================  ==========================================  ======  ======
name                wire                                        decode  encode
==================  ==========================================  ======  ======
openai_chat         OpenAI Chat Completions (SSE)               yes     yes
openai_responses    OpenAI Responses (SSE, named events)        yes     yes
anthropic           Anthropic Messages (SSE, named events)      yes     yes
gemini              Gemini streamGenerateContent?alt=sse        yes     yes
ollama              Ollama /api/chat (NDJSON)                   yes     yes
vercel_ui           Vercel AI SDK UI message stream (SSE)       simple  yes
==================  ==========================================  ======  ======
"""

from .accumulate import Accumulator, accumulate, replay
from .anthropic import ANTHROPIC
from .base import StreamDecoder, StreamEncoder
from .dialect import Dialect
from .estimate import estimate_tokens, estimate_usage
from .frame import Frame, to_wire
from .gemini import GEMINI
from .model import (
    Choice,
    Completion,
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningDelta,
    ReasoningPart,
    RefusalDelta,
    Request,
    Role,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from .ollama import OLLAMA, OLLAMA_GENERATE
from .openai_chat import OPENAI_CHAT
from .openai_responses import OPENAI_RESPONSES
from .vercel import VERCEL_UI

DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC, GEMINI, OLLAMA, VERCEL_UI)
}

__all__ = [
    "ANTHROPIC",
    "DIALECTS",
    "GEMINI",
    "OLLAMA",
    "OLLAMA_GENERATE",
    "OPENAI_CHAT",
    "OPENAI_RESPONSES",
    "VERCEL_UI",
    "Accumulator",
    "Choice",
    "Completion",
    "Delta",
    "Dialect",
    "ErrorKind",
    "Finish",
    "FinishReason",
    "Frame",
    "ImagePart",
    "Message",
    "Part",
    "ReasoningDelta",
    "ReasoningPart",
    "RefusalDelta",
    "Request",
    "Role",
    "Start",
    "StreamDecoder",
    "StreamEncoder",
    "StreamError",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallPart",
    "ToolCallStart",
    "ToolChoice",
    "ToolResultPart",
    "Usage",
    "accumulate",
    "estimate_tokens",
    "estimate_usage",
    "replay",
    "to_wire",
]
