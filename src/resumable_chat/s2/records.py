"""The S2 data model: records, positions, append input and acks, read batches.

Plain slotted dataclasses, not pydantic models: these objects sit on the hot path of the
writer and of every replay, and the wire models (JSON with base64 bytes) live in
:mod:`resumable_chat.s2.http` and the test server instead. They are not frozen either: a
frozen dataclass costs about three times as much to construct (each field goes through
``object.__setattr__``), and a stored chunk makes several. Treat them as read-only values;
they compare by value and are not hashable.

Shapes follow S2 REST v1 (``AppendRecord``, ``AppendInput``, ``AppendAck``,
``SequencedRecord``, ``ReadBatch``, ``StreamPosition``). Header names and values and record
bodies are ``bytes``, as S2 stores them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "FENCE_HEADER",
    "MAX_BATCH_METERED_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_FENCING_TOKEN_BYTES",
    "MAX_STREAM_NAME_BYTES",
    "TRIM_HEADER",
    "AppendAck",
    "AppendInput",
    "AppendRecord",
    "ReadBatch",
    "SequencedRecord",
    "StreamPosition",
    "fence_record",
    "is_command_record",
    "is_fence",
    "is_stop_fence",
    "is_terminal_fence",
    "is_trim",
    "metered_bytes",
    "now_ms",
    "trim_record",
    "trim_target",
]


def now_ms() -> int:
    """Now as an S2 record timestamp: milliseconds since the Unix epoch (wall clock)."""
    return time.time_ns() // 1_000_000


Header = tuple[bytes, bytes]

#: Header of a fence command record: one header, empty name, value ``fence``.
FENCE_HEADER: Header = (b"", b"fence")
#: Header of a trim command record: one header, empty name, value ``trim``.
TRIM_HEADER: Header = (b"", b"trim")
#: At most this many records in one append (S2 limits).
MAX_BATCH_RECORDS = 1000
#: At most this many metered bytes in one append (1 MiB, S2 limits).
MAX_BATCH_METERED_BYTES = 1024 * 1024
#: A fencing token is at most 36 UTF-8 bytes (S2 ``MAX_FENCING_TOKEN_LENGTH``).
MAX_FENCING_TOKEN_BYTES = 36
#: A stream name is 1 to 512 bytes.
MAX_STREAM_NAME_BYTES = 512


@dataclass(slots=True)
class StreamPosition:
    """A position in a stream: ``seq_num`` (records) and ``timestamp`` (ms since the epoch).

    As a tail it means "the next seq_num to be assigned, and the timestamp of the last
    record" (S2 REST v1 ``StreamPosition``).
    """

    seq_num: int
    timestamp: int


@dataclass(slots=True)
class AppendRecord:
    """One record to append (S2 ``AppendRecord``).

    ``body`` and header names/values are bytes; ``timestamp`` is in ms, or ``None`` to let
    the stream's timestamping config choose (arrival time by default).
    """

    body: bytes = b""
    headers: tuple[Header, ...] = ()
    timestamp: int | None = None


@dataclass(slots=True)
class SequencedRecord:
    """A record as read back (S2 ``SequencedRecord``): seq_num, timestamp (ms), headers, body."""

    seq_num: int
    timestamp: int
    headers: tuple[Header, ...] = ()
    body: bytes = b""


@dataclass(slots=True)
class AppendInput:
    """One atomic append batch (S2 ``AppendInput``).

    ``records``: 1 to 1000 records, at most 1 MiB metered in total. ``match_seq_num``: the
    append succeeds only if its first record would get exactly this seq_num.
    ``fencing_token``: the append succeeds only if the stream's current token equals it
    (``None`` means unconditional; a new stream's token is ``""``).

    Raises ``TypeError`` when a record is not an :class:`AppendRecord` (bare ``bytes``, say:
    wrap them as ``AppendRecord(body=...)``).
    """

    records: Sequence[AppendRecord]
    match_seq_num: int | None = None
    fencing_token: str | None = None

    def __post_init__(self) -> None:
        for record in self.records:
            if not isinstance(record, AppendRecord):
                raise TypeError(
                    "AppendInput.records must hold AppendRecord objects, got "
                    f"{type(record).__name__} (wrap bytes as AppendRecord(body=...))"
                )


@dataclass(slots=True)
class AppendAck:
    """Acknowledgement of an append (S2 ``AppendAck``).

    ``start.seq_num`` is the first appended record's seq_num, ``end.seq_num`` is one past the
    last, ``tail`` is the stream's tail after the append (it may be further on when other
    appends ran at the same time).
    """

    start: StreamPosition
    end: StreamPosition
    tail: StreamPosition


@dataclass(slots=True)
class ReadBatch:
    """Records returned by one read (S2 ``ReadBatch``), in seq_num order.

    ``tail`` is present when the read reached recent records.
    """

    records: list[SequencedRecord] = field(default_factory=list)
    tail: StreamPosition | None = None


def metered_bytes(record: AppendRecord | SequencedRecord) -> int:
    """Metered size of a record in bytes, the unit of S2's 1 MiB batch limit.

    ``8 + 2 * len(headers) + sum(len(name) + len(value)) + len(body)`` on raw bytes
    (S2 REST v1 limits; the same as ``s2_sdk.metered_bytes``).
    """
    size = 8 + len(record.body)
    for name, value in record.headers:
        size += 2 + len(name) + len(value)
    return size


def fence_record(token: str, timestamp: int | None = None) -> AppendRecord:
    """A fence command record that sets the stream's fencing token to ``token``.

    ``token`` is at most 36 UTF-8 bytes; ``timestamp`` in ms or ``None``.
    Raises ``ValueError`` when the token is too long (S2 would answer 422).
    """
    body = token.encode()
    if len(body) > MAX_FENCING_TOKEN_BYTES:
        raise ValueError(f"fencing token is {len(body)} bytes; S2 allows at most 36")
    return AppendRecord(body=body, headers=(FENCE_HEADER,), timestamp=timestamp)


def trim_record(seq_num: int, timestamp: int | None = None) -> AppendRecord:
    """A trim command record: deletes records below ``seq_num`` (8-byte big-endian body)."""
    if not 0 <= seq_num < 2**64:
        raise ValueError("trim seq_num must fit in an unsigned 64-bit integer")
    return AppendRecord(
        body=seq_num.to_bytes(8, "big"), headers=(TRIM_HEADER,), timestamp=timestamp
    )


def is_command_record(record: AppendRecord | SequencedRecord) -> bool:
    """True when the record is an S2 command: exactly one header, with an empty name."""
    return len(record.headers) == 1 and record.headers[0][0] == b""


def is_fence(record: AppendRecord | SequencedRecord) -> bool:
    """True for a fence command record (one header ``("", "fence")``)."""
    return len(record.headers) == 1 and record.headers[0] == FENCE_HEADER


def is_trim(record: AppendRecord | SequencedRecord) -> bool:
    """True for a trim command record (one header ``("", "trim")``)."""
    return len(record.headers) == 1 and record.headers[0] == TRIM_HEADER


def is_terminal_fence(record: AppendRecord | SequencedRecord) -> bool:
    """True for a fence whose token starts with ``end-`` or ``error-``: a closed generation.

    The prefixes are the record layout of ``@s2-dev/resumable-stream`` 2.1 (``src/protocol.ts``).
    """
    return is_fence(record) and (
        record.body.startswith(b"end-") or record.body.startswith(b"error-")
    )


def is_stop_fence(record: AppendRecord | SequencedRecord) -> bool:
    """True for a stop request: a fence whose token starts with ``stop-``.

    Another instance appends it, conditioned on the running generation's token, to stop that
    generation; the generation's writer adopts the token and writes the stop terminal. It is
    not a generation boundary.
    """
    return is_fence(record) and record.body.startswith(b"stop-")


def trim_target(record: AppendRecord | SequencedRecord) -> int:
    """The seq_num a trim record asks for. Raises ``ValueError`` unless the body is 8 bytes."""
    if len(record.body) != 8:
        raise ValueError("a trim record's body must be exactly 8 bytes")
    return int.from_bytes(record.body, "big")
