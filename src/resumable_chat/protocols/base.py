"""The dialect interface the chat core uses, one implementation per client protocol.

A dialect owns everything protocol-specific (DESIGN.md §3 "protocol dialects"): response
headers, the error chunk, the stop terminal, what is stored before an answer, which stored
records a replay skips, and the history fold. The chat core never looks inside a chunk
beyond handing it to the dialect's :class:`TurnState`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_ERROR_TEXT", "Chunk", "Dialect", "TurnState"]

#: A chunk is a plain JSON object in the protocol's shape (AI SDK ``UIMessageChunk``,
#: TanStack ``StreamChunk``).
Chunk = dict[str, Any]

#: The default error text: generic, like the AI SDK's default ``onError``, so provider
#: details never reach clients unless an ``on_error`` policy says so.
DEFAULT_ERROR_TEXT = "An error occurred."


class TurnState(ABC):
    """Per-generation view of the chunks a source produced, kept by the dialect.

    The chat core calls :meth:`opening` with the first chunk, :meth:`observe` with every
    chunk (including the first) before it is sent and stored, and one of
    :meth:`stop_chunks` / :meth:`error_chunks` when the generation is stopped or fails.
    """

    @abstractmethod
    def opening(self, first: Chunk | None) -> list[Chunk]:
        """Chunks to emit before ``first`` (``None`` when the source produced nothing)."""

    @abstractmethod
    def observe(self, chunk: Chunk) -> None:
        """Track ``chunk`` (may normalise it in place, e.g. set a message id)."""

    @abstractmethod
    def stop_chunks(self) -> list[Chunk]:
        """The protocol's proper ending for an answer stopped mid-way."""

    @abstractmethod
    def error_chunks(self, error_text: str) -> list[Chunk]:
        """The protocol's error terminal carrying ``error_text``."""


class Dialect(ABC):
    """One client protocol's conventions on top of the shared chat core."""

    #: ``"ai-sdk"`` or ``"tanstack"``.
    name: str
    #: Headers of every SSE response (live and replay).
    response_headers: Mapping[str, str]
    #: Bytes sent after the last frame of a finished SSE response (may be empty).
    done_frame: bytes

    @abstractmethod
    def new_turn(self, *, message_id: str | None) -> TurnState:
        """State for a new generation; ``message_id`` pins the answer's message id."""

    def chunk_problem(self, chunk: Chunk) -> str | None:
        """Why the client would reject ``chunk`` (a dict with a string ``type``), or ``None``.

        The chat core ends an answer with the error terminal instead of sending such a chunk.
        The default accepts every chunk.
        """
        return None

    #: How a session-mode replay without a cursor starts: ``"answer"`` sends the running
    #: answer only (AI SDK reconnect); ``"snapshot"`` sends completed history folded into one
    #: ``MESSAGES_SNAPSHOT``, then the running answer, then follows every later turn (TanStack).
    session_replay: str = "answer"

    @abstractmethod
    def message_records(self, message: Mapping[str, Any]) -> list[Chunk]:
        """Records stored before an answer so history rebuilds from the log alone."""

    def storage_form(self, chunk: Chunk) -> Chunk:
        """The chunk as stored (default: unchanged; the same object means one encoding)."""
        return chunk

    def snapshot_frame(self, messages: list[dict[str, Any]]) -> Chunk:
        """The chunk carrying folded history (``"snapshot"`` replays only)."""
        raise NotImplementedError(f"{self.name} has no history snapshot")

    @abstractmethod
    def is_history_record(self, body: bytes) -> bool:
        """True for stored records a live replay must not send (e.g. the stored message)."""

    @abstractmethod
    def fold(self, chunks: Iterable[Chunk]) -> list[dict[str, Any]]:
        """Fold stored chunks (all generations, in order) into the client's messages."""
