"""S2 REST v1 JSON shapes and their encoding: the pydantic ``Wire*`` models of
https://s2.dev/docs/api (records, batches, acks, tails, errors), converted to the dataclasses of
:mod:`resumable_chat.s2.records` at this boundary, and the append body encoder.

The models ignore unknown fields and treat new ones as optional, as the API still grows fields.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resumable_chat.s2.errors import (
    S2Error,
)
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
)

__all__ = [
    "WireAppendAck",
    "WireAppendInput",
    "WireAppendRecord",
    "WireConditionFailed",
    "WireErrorInfo",
    "WirePing",
    "WireReadBatch",
    "WireSequencedRecord",
    "WireStreamPosition",
    "WireTailResponse",
    "decode_batch",
    "encode_append_input",
]


# -- wire models ---------------------------------------------------------------------------

U64 = Annotated[int, Field(ge=0, lt=2**64)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WireStreamPosition(_Wire):
    """JSON ``StreamPosition``: ``seq_num`` (records) and ``timestamp`` (ms since the epoch)."""

    seq_num: U64 = 0
    timestamp: U64 = 0

    def to_position(self) -> StreamPosition:
        """The :class:`~resumable_chat.s2.records.StreamPosition` dataclass of this position."""
        return StreamPosition(self.seq_num, self.timestamp)


class WireAppendRecord(_Wire):
    """JSON ``AppendRecord``: ``timestamp`` (ms or null), ``headers`` as ``[name, value]``
    pairs and ``body``, both strings encoded per ``s2-format`` (https://s2.dev/docs/api)."""

    timestamp: U64 | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""


class WireAppendInput(_Wire):
    """JSON ``AppendInput``: 1-1000 ``records``, optional ``match_seq_num`` and a plain-string
    ``fencing_token`` (never base64, whatever ``s2-format`` says; https://s2.dev/docs/api)."""

    records: list[WireAppendRecord]
    match_seq_num: U64 | None = None
    fencing_token: str | None = None


class WireAppendAck(_Wire):
    """JSON ``AppendAck``: ``start``, ``end`` (one past the last record) and ``tail``."""

    start: WireStreamPosition
    end: WireStreamPosition
    tail: WireStreamPosition

    def to_ack(self) -> AppendAck:
        """The :class:`~resumable_chat.s2.records.AppendAck` dataclass of this ack."""
        return AppendAck(self.start.to_position(), self.end.to_position(), self.tail.to_position())


class WireSequencedRecord(_Wire):
    """JSON ``SequencedRecord``; ``headers`` and ``body`` are omitted when empty (S2's
    ``s2-format`` header)."""

    seq_num: U64
    timestamp: U64 = 0
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""


class WireReadBatch(_Wire):
    """JSON ``ReadBatch``: ``records`` and, when the read reached recent records, ``tail``."""

    records: list[WireSequencedRecord] = Field(default_factory=list)
    tail: WireStreamPosition | None = None


class WireTailResponse(_Wire):
    """JSON ``TailResponse`` ``{"tail": StreamPosition}`` (check-tail and the 416 body)."""

    tail: WireStreamPosition


class WireErrorInfo(_Wire):
    """JSON ``ErrorInfo`` ``{"code", "message"}``, the standard error body
    (https://s2.dev/docs/api, errors)."""

    code: str | None = None
    message: str | None = None


class WireConditionFailed(_Wire):
    """412 body: ``{"fencing_token_mismatch": T}`` or ``{"seq_num_mismatch": N}`` (https://s2.dev/docs/api)."""

    fencing_token_mismatch: str | None = None
    seq_num_mismatch: U64 | None = None


class WirePing(_Wire):
    """Data of an SSE ``ping`` event: server time (ms) and, on newer servers, the tail."""

    timestamp: U64 | None = None
    tail: WireStreamPosition | None = None


# -- encoding ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def encode_append_input(input: AppendInput) -> bytes:
    """The JSON body (UTF-8 bytes) of an S2 REST v1 append for ``s2-format: base64``.

    Built from plain dicts (the hot path of every append): ``timestamp`` only when set,
    ``headers`` as base64 ``[name, value]`` pairs only when present, ``body`` base64 only when
    non-empty, ``match_seq_num`` / ``fencing_token`` (plain string) only when not ``None``.
    """
    records: list[dict[str, Any]] = []
    for record in input.records:
        item: dict[str, Any] = {}
        if record.timestamp is not None:
            item["timestamp"] = record.timestamp
        if record.headers:
            item["headers"] = [[_b64(name), _b64(value)] for name, value in record.headers]
        if record.body:
            item["body"] = _b64(record.body)
        records.append(item)
    payload: dict[str, Any] = {"records": records}
    if input.match_seq_num is not None:
        payload["match_seq_num"] = input.match_seq_num
    if input.fencing_token is not None:
        payload["fencing_token"] = input.fencing_token
    return json.dumps(payload, separators=(",", ":")).encode()


def decode_batch(data: str | bytes) -> ReadBatch:
    """A base64-format ``ReadBatch`` JSON document as a :class:`ReadBatch`.

    Raises ``S2Error`` when the document is not a valid ``ReadBatch``.
    """
    try:
        wire = WireReadBatch.model_validate_json(data)
        records = [
            SequencedRecord(
                r.seq_num,
                r.timestamp,
                tuple((_unb64(n), _unb64(v)) for n, v in r.headers),
                _unb64(r.body),
            )
            for r in wire.records
        ]
    except (ValidationError, binascii.Error, ValueError) as exc:
        raise S2Error(f"malformed ReadBatch from S2: {exc}") from exc
    return ReadBatch(records, wire.tail.to_position() if wire.tail is not None else None)
