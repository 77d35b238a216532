"""The dialect interface the chat core uses, one implementation per client protocol.

A dialect owns everything protocol-specific (see the docs page "Concepts"): response
headers, the error chunk, the stop terminal, what is stored before an answer, which stored
records a replay skips, and the history fold. The chat core never looks inside a chunk
beyond handing it to the dialect's :class:`TurnState`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "Chunk",
    "Dialect",
    "TurnState",
    "dialect_for",
    "normalize_messages",
    "register_dialect",
    "split_text_field",
]

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

    def lost_chunks(self, error_text: str) -> list[Chunk]:
        """The ending of an answer whose generating server stopped (another instance closes
        it, or this one was fenced out). Default: :meth:`error_chunks`."""
        return self.error_chunks(error_text)


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

    #: Whether :meth:`~resumable_chat.ResumableChat.load_messages` folds the answer of a
    #: generation still running into history (``True``), or leaves it to the client's resume
    #: (``False``: the AI SDK, many of whose clients add a resumed answer's parts to the
    #: partial one they hold).
    history_includes_running: bool = True

    @abstractmethod
    def message_records(self, message: Mapping[str, Any]) -> list[Chunk]:
        """Records stored before an answer so history rebuilds from the log alone."""

    def storage_form(self, chunk: Chunk) -> Chunk:
        """The chunk as stored (default: unchanged; the same object means one encoding)."""
        return chunk

    def history_chunk(self, chunk: Chunk, stored_ms: int) -> Chunk:
        """A stored chunk as the history fold (:meth:`fold`) takes it.

        Args:
            chunk: the chunk decoded from its record (a fresh dict: it may be changed).
            stored_ms: the record's S2 timestamp (ms since the epoch, given when it was
                appended), the same on every read, so a fold that needs a time for a chunk
                without one stays the same fold after fold.

        Returns:
            the chunk to fold. Default: ``chunk`` unchanged.
        """
        return chunk

    def split_chunk(
        self, chunk: Chunk, max_bytes: int, stored_size: Callable[[Chunk], int]
    ) -> list[Chunk] | None:
        """``chunk`` cut into consecutive chunks a client folds into the same message part,
        each ``stored_size`` at most ``max_bytes`` bytes; or ``None`` when the chunk's type
        cannot be cut (the default for every type).

        The chat core asks this for a chunk too large for one S2 record (1 MiB metered,
        S2's per-record limit, https://s2.dev/docs/platform/limits); a chunk that cannot be
        cut goes out whole and is stored in fragment records
        (:mod:`resumable_chat.log.fragments`), or, over their limit, ends the answer with
        :class:`~resumable_chat.chat.producer.ChunkTooLargeError`.
        A dialect cuts the chunks whose text the client concatenates (deltas), with
        :func:`split_text_field`.

        Args:
            chunk: a chunk in client form (:meth:`client_form`).
            max_bytes: the most bytes each piece may take as stored.
            stored_size: bytes of a chunk as stored (its :meth:`storage_form`, encoded).

        Returns:
            two or more chunks, or ``None``.
        """
        return None

    def client_form(self, chunk: Chunk) -> Chunk:
        """A chunk the source yielded (one :meth:`chunk_problem` accepts) as every client
        version of the protocol accepts it: what is sent live and stored. Default:
        unchanged (the same object)."""
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

    def session_messages(self, messages: object) -> list[dict[str, Any]]:
        """The request's messages as a session turn stores them and hands them to the source
        (default: :func:`normalize_messages`)."""
        return normalize_messages(messages)

    def is_run_start(self, body: bytes) -> bool:
        """True when the stored record ``body`` opens a run (a session replay's first load
        sends the running run raw from there). Default: no record does."""
        return False


#: The most bytes compact JSON writes for one character of a string: a control character
#: is escaped as ``\u001f`` (6 bytes); with ``ensure_ascii=False`` any other code point is
#: at most 4 UTF-8 bytes.
_MAX_JSON_BYTES_PER_CHAR = 6


def _json_string_bytes(text: str) -> int:
    """Bytes of ``text`` inside compact UTF-8 JSON, quotes left out."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def split_text_field(
    chunk: Chunk, field: str, max_bytes: int, stored_size: Callable[[Chunk], int]
) -> list[Chunk] | None:
    """``chunk`` as copies whose string ``field`` holds consecutive pieces of its text, each
    copy at most ``max_bytes`` bytes as ``stored_size`` measures it; the pieces joined are
    the text. ``None`` when ``field`` is not a string of two or more characters or when even
    an empty ``field`` leaves no room for one character.

    Pieces are cut between characters (code points, so never inside a UTF-8 sequence), each
    as long as fits: one character more would not. Only the text added to a piece is
    encoded (escapes do not depend on their neighbours), so a piece of 1 MiB costs about one
    encoding of itself. Raises ``UnicodeEncodeError`` for a lone surrogate in the text
    (JSON cannot store it as UTF-8).
    """
    text = chunk.get(field)
    if not isinstance(text, str) or len(text) < 2:
        return None
    room = max_bytes - stored_size({**chunk, field: ""})
    if room < _MAX_JSON_BYTES_PER_CHAR:
        return None
    pieces: list[Chunk] = []
    start = 0
    while start < len(text):
        end = _piece_end(text, start, room)
        pieces.append({**chunk, field: text[start:end]})
        start = end
    return pieces


def _piece_end(text: str, start: int, room: int) -> int:
    """The end of the longest piece of ``text`` from ``start`` whose JSON takes at most
    ``room`` bytes (at least one character: ``room`` holds any one)."""
    end, size = start, 0
    while end < len(text):
        left = room - size
        if left < _MAX_JSON_BYTES_PER_CHAR:  # a character or two more, one at a time
            grown = _json_string_bytes(text[end])
            if grown > left:
                break
            size, end = size + grown, end + 1
            continue
        grown = _json_string_bytes(text[end : end + left])  # one byte each, if it fits
        if grown <= left:
            size, end = size + grown, min(len(text), end + left)
            continue
        step = left // _MAX_JSON_BYTES_PER_CHAR  # fits whatever the characters are
        size, end = size + _json_string_bytes(text[end : end + step]), end + step
    return end


_ROLES = ("system", "user", "assistant")


def normalize_messages(messages: object) -> list[dict[str, Any]]:
    """Messages as ``makeSessionResponse`` normalises them (``@s2-dev/resumable-stream``
    ``src/tanstack-ai.ts`` ``normalizeMessages``).

    A non-list gives ``[]``; entries that are not objects or whose ``role`` is not ``system``,
    ``user`` or ``assistant`` are dropped; other fields are kept; ``id`` defaults to
    ``"message-<index in the input>"``; ``parts`` keeps only objects with a string ``type``
    (shallow copies), ``[]`` when absent.
    """
    if not isinstance(messages, list):
        return []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            continue
        normalized = dict(message)
        if not isinstance(normalized.get("id"), str):
            normalized["id"] = f"message-{index}"
        parts = normalized.get("parts")
        normalized["parts"] = [
            dict(p)
            for p in (parts if isinstance(parts, list) else [])
            if isinstance(p, dict) and isinstance(p.get("type"), str)
        ]
        out.append(normalized)
    return out


_DIALECTS: dict[str, Callable[[], Dialect]] = {}


def register_dialect(name: str, factory: Callable[[], Dialect]) -> None:
    """Make ``create_resumable_chat(protocol=name)`` build its dialect with ``factory()``.

    The protocol packages (:mod:`resumable_chat.protocols`) register ``"ai-sdk"`` and
    ``"tanstack"`` when ``resumable_chat`` is imported, so the chat core never imports a
    protocol.

    Args:
        name: the protocol name, e.g. ``"ai-sdk"``.
        factory: called once per chat, returns a fresh :class:`Dialect`.
    """
    _DIALECTS[name] = factory


def dialect_for(protocol: str) -> Dialect:
    """A new dialect for ``protocol``.

    Raises:
        ValueError: no dialect is registered under ``protocol``.
    """
    factory = _DIALECTS.get(protocol)
    if factory is None:
        names = " or ".join(repr(n) for n in sorted(_DIALECTS)) or "none registered"
        raise ValueError(f"protocol must be {names}, got {protocol!r}")
    return factory()
