"""The log port: what the chat core needs from an S2 basin.

Two implementations share these semantics exactly: :class:`~resumable_chat.s2.http.HttpBasin`
(S2 REST v1 over httpx) and :class:`~resumable_chat.s2.memory.MemoryBasin` (embedded,
in-process). Tests swap the implementation, never the logic above it, the same seam as
httpx's transports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from types import TracebackType

from resumable_chat.s2.pacing import AppendPacing
from resumable_chat.s2.records import AppendAck, AppendInput, ReadBatch, StreamPosition

__all__ = ["Basin"]


class Basin(ABC):
    """An S2 basin: a namespace of streams with append, read, tail and live follow.

    All methods are coroutines safe to call concurrently from one event loop. Every method
    raises :class:`~resumable_chat.s2.errors.S2Error` subclasses for S2 failures:
    ``FencingTokenMismatchError`` / ``SeqNumMismatchError`` (412),
    ``RangeNotSatisfiableError`` (416), ``StreamNotFoundError`` (404), ``S2AuthError``
    (401/403), ``S2InvalidError`` (400/422), ``S2UnavailableError`` (retries exhausted).
    """

    #: The basin's name (``S2_BASIN``), or a descriptive name for an embedded basin.
    name: str

    #: The most one call may take in seconds, all its retries included, when the basin
    #: bounds its calls (``HttpBasin``); ``None``: unbounded (the embedded basin answers at
    #: once). Callers that make a second call on the first one's behalf (a claim reading
    #: back whether its append landed) keep both within it.
    deadline_s: float | None = None

    #: The append budget this process's writers share on this basin
    #: (:class:`~resumable_chat.s2.pacing.AppendPacing`), when appends cost a request each
    #: (``HttpBasin``); ``None``: no budget (the embedded basin appends in memory).
    pacing: AppendPacing | None = None

    #: True when calls are answered in this process without waiting on I/O (the embedded
    #: :class:`~resumable_chat.s2.memory.MemoryBasin`, and views of it); ``False`` when each
    #: call is a request over the network (``HttpBasin``). The log engine lets the tasks a
    #: caller started run one step before a claim's request only in the second case: an
    #: in-memory claim lands in the same step, where yielding would only add a loop turn.
    in_memory: bool = False

    @abstractmethod
    async def append(self, stream: str, input: AppendInput) -> AppendAck:
        """Append one atomic batch to ``stream`` (S2 REST v1 append).

        The batch is 1 to 1000 records and at most 1 MiB metered. Conditions
        (``fencing_token``, then ``match_seq_num``) are checked before anything is written;
        on failure nothing is written and a 412 error is raised.
        """

    def append_nowait(self, stream: str, input: AppendInput) -> AppendAck | None:
        """:meth:`append` done synchronously, when this basin can (one held in memory).

        Args:
            stream: the stream name, as for :meth:`append`.
            input: the batch, as for :meth:`append` (1 to 1000 records, at most 1 MiB
                metered, optional ``fencing_token`` and ``match_seq_num`` conditions).

        Returns:
            the :class:`~resumable_chat.s2.records.AppendAck` once the batch is stored, or
            ``None`` when this basin cannot append synchronously: nothing was written, call
            :meth:`append`. The default returns ``None``; the log writer uses it to store a
            chunk without waking its task.

        Raises:
            FencingTokenMismatchError: the ``fencing_token`` condition failed (412, as
                :meth:`append`); nothing was written.
            SeqNumMismatchError: the ``match_seq_num`` condition failed; nothing was written.
            S2InvalidError: a batch S2 would reject (422); nothing was written.
        """
        return None

    def append_body_nowait(
        self, stream: str, body: bytes, *, match_seq_num: int, fencing_token: str
    ) -> int | None:
        """Append one record without headers synchronously, when this basin can and every
        condition holds: a batch of just that record, conditioned on ``match_seq_num`` and
        ``fencing_token`` (S2 REST v1 append conditions), with no batch or ack objects.

        Args:
            stream: the stream name, as for :meth:`append`.
            body: the record's body (bytes).
            match_seq_num: the seq_num the record must get (the stream's tail).
            fencing_token: the token the stream must hold.

        Returns:
            the record's timestamp (ms) once it is stored at ``match_seq_num``; ``None``
            when this basin cannot append synchronously or anything is not as required (a
            condition fails, the stream is missing, the record is too large): nothing was
            written, and :meth:`append` of the same batch gives S2's answer. Never raises.
            The default returns ``None``; the log writer uses it to store a chunk at a time.
        """
        return None

    @abstractmethod
    async def read(
        self,
        stream: str,
        *,
        seq_num: int | None = None,
        timestamp: int | None = None,
        tail_offset: int | None = None,
        count: int | None = None,
        bytes: int | None = None,
        until: int | None = None,
        clamp: bool = False,
        wait: float = 0,
    ) -> ReadBatch:
        """One bounded read (S2 REST v1 unary read).

        At most one of ``seq_num`` / ``timestamp`` (ms) / ``tail_offset`` (records before
        the tail); none means the tail. ``count`` (records, ≤ 1000) and ``bytes`` (metered,
        ≤ 1 MiB) bound the batch; ``until`` is an exclusive timestamp bound (ms). ``clamp``
        turns a start past the tail into the tail. ``wait`` (seconds, ≤ 60) long-polls when
        nothing is available yet. A start at or past the tail that cannot wait raises
        ``RangeNotSatisfiableError`` carrying the tail.
        """

    @abstractmethod
    async def check_tail(self, stream: str) -> StreamPosition:
        """The stream's tail: next seq_num to assign and last record's timestamp (ms)."""

    @abstractmethod
    def follow(
        self, stream: str, *, seq_num: int = 0, clamp: bool = False
    ) -> AsyncGenerator[ReadBatch, None]:
        """Read from ``seq_num`` and keep following new records live (S2 SSE read session).

        Yields non-empty batches in order and never ends by itself: the caller stops it with
        ``aclose()`` (use ``contextlib.aclosing``). A start past the tail raises
        ``RangeNotSatisfiableError`` unless ``clamp``. Implementations resume dropped
        connections from the last delivered seq_num, so no record is skipped or repeated.
        """

    @abstractmethod
    async def create_stream(self, stream: str) -> None:
        """Create ``stream`` if it does not exist (idempotent; S2 ensure_stream)."""

    @abstractmethod
    async def delete_stream(self, stream: str) -> None:
        """Delete ``stream`` and its records. A missing stream is not an error."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release clients and wake live followers. Idempotent."""

    async def __aenter__(self) -> Basin:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
