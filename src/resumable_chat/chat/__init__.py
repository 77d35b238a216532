"""The chat core: one protocol-agnostic :class:`ResumableChat` on the log engine.

Modes, the stop registry, live answers, session turns, replays and history; everything a
client protocol decides is behind :class:`Dialect` (:mod:`resumable_chat.protocols` provides
the AI SDK and TanStack ones). See the docs page "Concepts" for the design.
"""

from resumable_chat.chat.core import (
    LOST_GENERATION_ERROR_TEXT,
    MessageNotStorableError,
    MessageTooLargeError,
    ResumableChat,
    WaitUntil,
    create_resumable_chat,
    not_storable_response,
)
from resumable_chat.chat.dialect import (
    DEFAULT_ERROR_TEXT,
    Chunk,
    Dialect,
    TurnState,
    dialect_for,
    normalize_messages,
    register_dialect,
    split_text_field,
)
from resumable_chat.chat.producer import (
    ChunkTooLargeError,
    StopSignal,
    decode_chunk,
    encode_chunk,
)

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "LOST_GENERATION_ERROR_TEXT",
    "Chunk",
    "ChunkTooLargeError",
    "Dialect",
    "MessageNotStorableError",
    "MessageTooLargeError",
    "ResumableChat",
    "StopSignal",
    "TurnState",
    "WaitUntil",
    "create_resumable_chat",
    "decode_chunk",
    "dialect_for",
    "encode_chunk",
    "normalize_messages",
    "not_storable_response",
    "register_dialect",
    "split_text_field",
]
