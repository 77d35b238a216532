"""A chunk too large for one S2 record, stored across consecutive records.

S2 keeps at most 1 MiB metered per record (https://s2.dev/docs/platform/limits). A chunk
whose body is larger (a generated image in a tool output or a ``file`` part, a large data
part) is stored as ``n`` fragment records, each a data record with the header
``rc-part: <index>/<n>`` (``0/3``, ``1/3``, ``2/3``), appended in order by the generation's
writer. Readers join them back into one record (:class:`FragmentJoiner`,
:func:`join_fragments`): its body is the fragments' bodies in order, its ``seq_num``,
timestamp and SSE id those of the last fragment (``record_id``: the id the live frame of
the whole chunk carried).

What can come between fragments and what cannot: a stop request (another instance's
``stop-`` fence) or a heartbeat may; the writer appends nothing else until the chunk is
stored. A claim or terminal before the last fragment means the writer was cut off (taken
over, crashed): the fragments so far are dropped, as a chunk that was never stored. A
fragment out of order is dropped with its chunk. So a reader sees each chunk whole or not
at all. A follow from a resume cursor that points inside a chunk (an id no frame carried:
every frame's id is past its chunk's last fragment) reads that chunk from its first
fragment (:func:`~resumable_chat.log.follow.follow_log`), so the chunk, whose id is above
the cursor, is not lost.

Other readers of the log (``@s2-dev/resumable-stream`` 2.1, earlier releases of this
package) see the fragments as data records whose bodies are pieces of JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from resumable_chat.log.records import MAX_DATA_BODY_BYTES, RecordKind, classify
from resumable_chat.s2.records import AppendRecord, Header, SequencedRecord

__all__ = [
    "FRAGMENT_HEADER",
    "MAX_FRAGMENTS",
    "FragmentJoiner",
    "fragment_of",
    "fragment_records",
    "join_fragments",
]

#: Header name of a fragment record; the value is ``<index>/<count>`` in ASCII digits.
FRAGMENT_HEADER: Final = b"rc-part"
#: The most records one chunk is stored in: 64, so a chunk of at most about 64 MiB.
MAX_FRAGMENTS: Final = 64
#: Body bytes per fragment: a data record's room less the fragment header's (its value
#: at most ``63/64``).
_FRAGMENT_BYTES: Final = MAX_DATA_BODY_BYTES - (2 + len(FRAGMENT_HEADER) + 5)


def fragment_records(body: bytes) -> list[AppendRecord] | None:
    """``body`` (a stored chunk over :data:`MAX_DATA_BODY_BYTES`) as fragment records, in
    the order to append them; ``None`` when it needs more than :data:`MAX_FRAGMENTS`.

    Args:
        body: the chunk's stored form, encoded (bytes).

    Returns:
        At least two records (a body that fits one record is not cut), each within S2's
        1 MiB record limit even with the writer's ``sse-id`` header.
    """
    count = -(-len(body) // _FRAGMENT_BYTES)
    if count > MAX_FRAGMENTS:
        return None
    count = max(count, 2)
    size = -(-len(body) // count)
    return [
        AppendRecord(
            body[index * size : (index + 1) * size],
            ((FRAGMENT_HEADER, f"{index}/{count}".encode()),),
        )
        for index in range(count)
    ]


def fragment_of(record: SequencedRecord) -> tuple[int, int] | None:
    """Where ``record`` sits in a chunk stored in fragments.

    Returns ``(index, count)`` from its ``rc-part`` header (``index`` from 0); ``(-1, 0)``
    when that header is malformed (such a record never joins); ``None`` when ``record`` is
    not a fragment."""
    for name, value in record.headers:
        if name == FRAGMENT_HEADER:
            index, _, count = value.partition(b"/")
            if index.isdigit() and count.isdigit():
                return int(index), int(count)
            return (-1, 0)  # malformed: never joins
    return None


class FragmentJoiner:
    """Joins fragment records back into whole records, one record at a time, keeping an
    unfinished chunk across calls (a read batch may end inside one)."""

    __slots__ = ("_parts", "pending_from")

    def __init__(self) -> None:
        self._parts: list[SequencedRecord] = []
        #: The seq_num of the first fragment of the unfinished chunk, if one is pending.
        self.pending_from: int | None = None

    def add(self, record: SequencedRecord) -> SequencedRecord | None:
        """Take the next record of the log.

        Args:
            record: the record after the one given last (records in log order, contiguous
                but for what the caller skips; the joiner never reads S2).

        Returns:
            ``record`` itself when it is not a fragment (a claim or terminal also drops an
            unfinished chunk; a stop, heartbeat or trim leaves it pending); the joined record
            when ``record`` is the last fragment of a chunk; ``None`` for any other fragment.
        """
        if not record.headers:  # a chunk or a heartbeat, as the writer stores them
            if record.body:
                self._drop()
            return record
        part = fragment_of(record)
        if part is None:
            kind = classify(record)
            if kind is RecordKind.DATA or kind.boundary:
                self._drop()
            return record
        index, count = part
        if index != len(self._parts) or count < 2 or index >= count:
            self._drop()  # out of order: the chunk it belongs to is incomplete here
            if index != 0 or count < 2:
                return None
        parts = self._parts
        if not parts:
            self.pending_from = record.seq_num
        parts.append(record)
        if len(parts) < count:
            return None
        body = b"".join(p.body for p in parts)
        headers: tuple[Header, ...] = tuple(h for h in record.headers if h[0] != FRAGMENT_HEADER)
        self._drop()
        return SequencedRecord(record.seq_num, record.timestamp, headers, body)

    def _drop(self) -> None:
        if self._parts:
            self._parts = []
        self.pending_from = None


def join_fragments(records: Iterable[SequencedRecord]) -> tuple[list[SequencedRecord], int | None]:
    """``records`` (contiguous, in log order) with every stored chunk whole.

    Args:
        records: sequenced records as S2 returned them (e.g. :func:`~.scan.read_range`).

    Returns:
        The records, each chunk stored in fragments as one record (see the module
        docstring), and the seq_num of the first fragment of a chunk the records end
        inside (to read on from there), else ``None``.
    """
    joiner = FragmentJoiner()
    out = [joined for r in records if (joined := joiner.add(r)) is not None]
    return out, joiner.pending_from
