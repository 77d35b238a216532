"""resumable-chat: resumable, followable and stoppable LLM chat streams for FastAPI on S2.

>>> from resumable_chat import create_resumable_chat
>>> chat = create_resumable_chat(protocol="ai-sdk", mode="session")
"""

import resumable_chat.protocols  # registers the "ai-sdk" and "tanstack" dialects  # noqa: F401
from resumable_chat.chat import DEFAULT_ERROR_TEXT, ResumableChat, StopSignal, create_resumable_chat
from resumable_chat.text_streams import create_resumable_stream_context

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "ResumableChat",
    "StopSignal",
    "create_resumable_chat",
    "create_resumable_stream_context",
]
__version__ = "0.1.0"
