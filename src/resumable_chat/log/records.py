"""The record layout of a generation log, and how the engine reads it.

A chat's S2 stream holds generations one after another. Each is (record layout of
``@s2-dev/resumable-stream`` 2.1, ``packages/resumable-stream/src/protocol.ts``):

- a claim: a fence command whose token starts with ``session-``;
- data records (one chunk each; an empty body is a heartbeat that every reader skips);
- optionally ``stop-`` fences: another instance asked the generation to stop; its writer adopts
  the token and goes on to its stop terminal;
- a terminal fence, ``end-`` (finished or stopped) or ``error-`` (failed, or closed after its
  writer went silent for a lease), and in single-use mode a trim.

SSE ids: a data record is sent as ``id: <seq_num + 1>``, the cursor to resume after it. A remote
stop's fence lands between records that the writer had already sent live but not yet stored, so
those records end up one position later than the ids their live frames carried. The writer
stores each such record with an ``sse-id`` header holding the id it was sent with, and readers
use that header, so an id means the same record on every path (:func:`record_id`).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import random
import secrets
from collections.abc import Sequence

from resumable_chat.s2.records import (
    MAX_BATCH_METERED_BYTES,
    MAX_FENCING_TOKEN_BYTES,
    AppendRecord,
    SequencedRecord,
    fence_record,
    is_command_record,
    is_fence,
    is_trim,
)

__all__ = [
    "CLAIM_PREFIX",
    "END_PREFIX",
    "ERROR_PREFIX",
    "MAX_DATA_BODY_BYTES",
    "MAX_SAFE_INTEGER",
    "SSE_ID_HEADER",
    "STOP_PREFIX",
    "TURN_KEY_SEPARATOR",
    "RecordKind",
    "answered_turn",
    "classify",
    "fence_token",
    "new_token",
    "record_id",
    "stop_token",
    "turn_key",
]

#: Token prefix of a claim fence (a generation starts).
CLAIM_PREFIX = "session-"
#: Token prefix of the terminal fence of a generation that finished or was stopped.
END_PREFIX = "end-"
#: Token prefix of the terminal fence of a generation that failed or was taken over.
ERROR_PREFIX = "error-"
#: Token prefix of a stop request appended by another instance.
STOP_PREFIX = "stop-"
#: ``Number.MAX_SAFE_INTEGER``: the single-use trim target (everything).
MAX_SAFE_INTEGER = 9007199254740991
#: Header of a data record stored later than the id its live frame carried (a remote stop's
#: fence landed before it); the value is that id in ASCII digits.
SSE_ID_HEADER = b"sse-id"
#: The largest body (bytes) of a data record that always fits one S2 record: 1 MiB metered
#: (S2's per-record limit, https://s2.dev/docs/platform/limits) less the record's 8 bytes
#: and an ``sse-id`` header with a 20-digit id (2 + 6 + 20), which the writer adds to a
#: record a remote stop moved. Larger chunks are cut into records of at most this size.
MAX_DATA_BODY_BYTES = MAX_BATCH_METERED_BYTES - 8 - (2 + len(SSE_ID_HEADER) + 20)


class RecordKind(enum.Enum):
    """What a record means in a generation log."""

    DATA = "data"
    HEARTBEAT = "heartbeat"
    CLAIM = "claim"
    END = "end"
    ERROR = "error"
    STOP = "stop"
    TRIM = "trim"
    #: A fence of a layout we do not know: it ends whatever generation was open.
    FOREIGN_FENCE = "foreign-fence"
    #: A command record S2 may add in the future.
    OTHER_COMMAND = "other-command"

    @property
    def terminal(self) -> bool:
        """True for ``END`` and ``ERROR``."""
        return self is RecordKind.END or self is RecordKind.ERROR

    @property
    def closes(self) -> bool:
        """True for a fence that ends the open generation (a terminal, or a foreign fence)."""
        return self in _CLOSING

    @property
    def boundary(self) -> bool:
        """True for a fence that starts or ends a generation (not a stop request)."""
        return self is RecordKind.CLAIM or self in _CLOSING


def classify(record: SequencedRecord | AppendRecord) -> RecordKind:
    """The :class:`RecordKind` of ``record`` (command records are one header with an empty
    name, S2 REST v1 "command records")."""
    if not is_command_record(record):
        return RecordKind.DATA if record.body else RecordKind.HEARTBEAT
    if not is_fence(record):
        return RecordKind.TRIM if is_trim(record) else RecordKind.OTHER_COMMAND
    body = record.body
    if body.startswith(b"end-"):
        return RecordKind.END
    if body.startswith(b"error-"):
        return RecordKind.ERROR
    if body.startswith(b"stop-"):
        return RecordKind.STOP
    if body.startswith(b"session-"):
        return RecordKind.CLAIM
    return RecordKind.FOREIGN_FENCE


_CLOSING = frozenset({RecordKind.END, RecordKind.ERROR, RecordKind.FOREIGN_FENCE})


def fence_token(record: SequencedRecord | AppendRecord) -> str:
    """The token a fence record sets (its UTF-8 body)."""
    return record.body.decode("utf-8", "replace")


def record_id(record: SequencedRecord) -> int:
    """The SSE id of a data record: its ``sse-id`` header when present, else ``seq_num + 1``."""
    for name, value in record.headers:
        if name == SSE_ID_HEADER and value.isdigit() and value.isascii():
            return int(value)
    return record.seq_num + 1


def new_token(prefix: str, random_bytes: int = 8, rng: random.Random | None = None) -> str:
    """``prefix`` + standard base64 of ``random_bytes`` random bytes (``@s2-dev/resumable-stream``
    token shape). ``rng``: a seeded source for reproducible simulations; ``None`` uses
    :mod:`secrets`. The result must stay within S2's 36-byte token limit."""
    raw = secrets.token_bytes(random_bytes) if rng is None else rng.randbytes(random_bytes)
    return prefix + base64.b64encode(raw).decode()


def stop_token(claim_token: str) -> str:
    """The fencing token of a stop request for the generation that claimed with
    ``claim_token``: ``stop-`` + the claim token's random part (cut to S2's 36-byte limit).

    S2 answers an append whose ``fencing_token`` no longer matches with 412 and the stream's
    current token (S2 REST v1, append conditions), so the generating writer recognises a
    stop of its own generation from the failed append alone and stops its model one read
    sooner. A stop of a later generation (ours was taken over meanwhile) carries that
    generation's claim, so it is never taken for ours. Any other ``stop-`` token (an
    older version's random one) is still adopted, after the read.
    """
    rest = claim_token.removeprefix(CLAIM_PREFIX).encode()
    room = MAX_FENCING_TOKEN_BYTES - len(STOP_PREFIX)
    return STOP_PREFIX + rest[:room].decode("utf-8", "ignore")


def fence(
    prefix: str,
    rng: random.Random | None = None,
    timestamp: int | None = None,
    *,
    turn_key: str | None = None,
) -> AppendRecord:
    """A fence record with a fresh token of ``prefix`` (4 random bytes for terminals and
    stops, 8 for claims, as upstream). ``timestamp``: ms, or ``None`` for arrival time.
    ``turn_key``: the answered turn's key (:func:`turn_key`), appended as ``.<key>`` (a
    terminal of an answer given once per message; readers look at the prefix only)."""
    size = 8 if prefix in (CLAIM_PREFIX, STOP_PREFIX) else 4
    token = new_token(prefix, size, rng)
    if turn_key is not None:
        token = f"{token}{TURN_KEY_SEPARATOR}{turn_key}"
    return fence_record(token, timestamp)


#: Between a terminal token's random part (standard base64: never a dot) and a turn key.
TURN_KEY_SEPARATOR = "."


def turn_key(message_records: Sequence[bytes]) -> str:
    """A short key (12 characters of URL-safe base64, 72 bits of SHA-256) naming a turn by
    its stored message records (bytes as stored), for terminals of answers given once per
    message (``LogEngine.start(turn_key=...)``)."""
    digest = hashlib.sha256(b"\x00".join(message_records)).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def answered_turn(token: str) -> str | None:
    """The turn key an ``end-`` terminal's token carries (see :func:`fence`), or ``None``
    (another kind of token, or a terminal of an answer not given once per message)."""
    if not token.startswith(END_PREFIX) or TURN_KEY_SEPARATOR not in token:
        return None
    return token.rpartition(TURN_KEY_SEPARATOR)[2] or None
