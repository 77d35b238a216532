"""Encoding of the bundled S2 server: JSON and base64 records, SSE events, error bodies and
protobuf messages (``s2/v1/s2.proto`` of ``s2-streamstore/s2-specs``)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError as _DecodeError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resumable_chat.s2.errors import (
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2Error,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    AppendRecord,
    SequencedRecord,
    StreamPosition,
)
from resumable_chat.testing import s2_pb2 as _pb
from resumable_chat.testing.s2_compat.model import (
    Format,
    SessionFault,
    _HttpError,
    _ReadQuery,
)

# -- encoding helpers ----------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _format(request: Request) -> Format:
    """The ``s2-format`` header (``api/src/data.rs`` ``Format::from_str``); 400 if unknown."""
    value = request.headers.get("s2-format")
    if value is None:
        return "raw"
    name = value.strip()
    if name in ("raw", "json"):
        return "raw"
    if name in ("base64", "json-binsafe"):
        return "base64"
    raise _HttpError(400, "bad_header", f"invalid s2-format header: {value!r}")


def _encode(fmt: Format, data: bytes) -> str:
    if fmt == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", "replace")


def _decode(fmt: Format, text: str) -> bytes:
    if fmt == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _HttpError(422, "invalid", "invalid Base64 encoding") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _HttpError(400, "bad_json", "string is not valid UTF-8") from None


def _position(position: StreamPosition) -> dict[str, int]:
    return {"seq_num": position.seq_num, "timestamp": position.timestamp}


def _ack_json(ack: AppendAck) -> dict[str, Any]:
    return {"start": _position(ack.start), "end": _position(ack.end), "tail": _position(ack.tail)}


def _record_json(fmt: Format, record: SequencedRecord) -> dict[str, Any]:
    """A ``SequencedRecord``; ``headers``/``body`` omitted when empty (``api/.../json.rs``)."""
    item: dict[str, Any] = {"seq_num": record.seq_num, "timestamp": record.timestamp}
    if record.headers:
        item["headers"] = [[_encode(fmt, n), _encode(fmt, v)] for n, v in record.headers]
    if record.body:
        item["body"] = _encode(fmt, record.body)
    return item


def _batch_json(
    fmt: Format, records: Sequence[SequencedRecord], tail: StreamPosition | None
) -> str:
    payload: dict[str, Any] = {"records": [_record_json(fmt, r) for r in records]}
    if tail is not None:
        payload["tail"] = _position(tail)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _json_body(request: Request, body: bytes) -> Any:
    """The JSON request body; 400 ``bad_json`` without a JSON ``Content-Type`` (axum's rule)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise _HttpError(400, "bad_json", "Expected request with `Content-Type: application/json`")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _HttpError(
            400, "bad_json", f"Failed to parse the request body as JSON: {exc}"
        ) from None


def _uint(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or int(value) >= 2**64:
        raise _HttpError(400, "bad_query", f"Failed to deserialize query string: {name}={value!r}")
    return int(value)


def _bool(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise _HttpError(400, "bad_query", f"Failed to deserialize query string: {name}={value!r}")
    return value == "true"


def _read_query(request: Request) -> _ReadQuery:
    query = _ReadQuery(
        seq_num=_uint(request, "seq_num"),
        timestamp=_uint(request, "timestamp"),
        tail_offset=_uint(request, "tail_offset"),
        count=_uint(request, "count"),
        bytes=_uint(request, "bytes"),
        until=_uint(request, "until"),
        wait=_uint(request, "wait"),
        clamp=_bool(request, "clamp"),
    )
    if sum(v is not None for v in (query.seq_num, query.timestamp, query.tail_offset)) > 1:
        raise _HttpError(
            422, "invalid", "only one of seq_num, timestamp, or tail_offset can be provided"
        )
    if query.timestamp is not None and query.until is not None and query.timestamp >= query.until:
        raise _HttpError(422, "invalid", "start `timestamp` exceeds or equal to `until`")
    return query


def _sse(event: str, data: str, event_id: str | None = None) -> str:
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {data}\n\n"


def _faulty_event(action: SessionFault, text: str) -> str:
    """What a session sends last when ``action`` is injected instead of event ``text``."""
    if action == "cut_mid_event":
        return text[: len(text) // 2]
    if action == "error":
        error = {"code": "unavailable", "message": "fault injected: read session failed"}
        return _sse("error", json.dumps(error, separators=(",", ":")))
    return ""


def _error_parts(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of S2's error response for ``exc`` (``handlers/v1/error.rs``).

    Re-raises ``exc`` when it is not one of the typed errors.
    """
    if isinstance(exc, _HttpError):
        return exc.status, exc.body
    if isinstance(exc, FencingTokenMismatchError):
        return 412, {"fencing_token_mismatch": exc.expected_fencing_token}
    if isinstance(exc, SeqNumMismatchError):
        return 412, {"seq_num_mismatch": exc.expected_seq_num}
    if isinstance(exc, RangeNotSatisfiableError):
        return 416, {"tail": _position(exc.tail)}
    if isinstance(exc, StreamNotFoundError):
        return 404, {"code": "stream_not_found", "message": "stream not found"}
    if isinstance(exc, S2Error):
        status = exc.status or 500
        code = exc.code or ("invalid" if status == 422 else "other")
        return status, {"code": code, "message": exc.message}
    raise exc


def _error_response(exc: Exception) -> Response:
    """S2's error response for the typed errors of the log port (``handlers/v1/error.rs``)."""
    status, body = _error_parts(exc)
    return JSONResponse(body, status)


# -- protobuf --------------------------------------------------------------------------------


def _proto_position(position: StreamPosition) -> _pb.StreamPosition:
    return _pb.StreamPosition(seq_num=position.seq_num, timestamp=position.timestamp)


def _proto_ack(ack: AppendAck) -> bytes:
    message = _pb.AppendAck(
        start=_proto_position(ack.start),
        end=_proto_position(ack.end),
        tail=_proto_position(ack.tail),
    )
    return message.SerializeToString()


def _proto_batch(records: Sequence[SequencedRecord], tail: StreamPosition | None) -> bytes:
    message = _pb.ReadBatch(
        records=[
            _pb.SequencedRecord(
                seq_num=r.seq_num,
                timestamp=r.timestamp,
                headers=[_pb.Header(name=n, value=v) for n, v in r.headers],
                body=r.body,
            )
            for r in records
        ]
    )
    if tail is not None:
        message.tail.CopyFrom(_proto_position(tail))
    return message.SerializeToString()


def _append_input_from_proto(data: bytes) -> AppendInput:
    """A protobuf ``AppendInput`` (``s2.proto``) as an :class:`AppendInput`.

    Raises 400 ``bad_proto`` when ``data`` is not a valid message.
    """
    try:
        message = _pb.AppendInput.FromString(data)
    except _DecodeError as exc:
        raise _HttpError(400, "bad_proto", f"invalid AppendInput message: {exc}") from None
    records = [
        AppendRecord(
            body=r.body,
            headers=tuple((h.name, h.value) for h in r.headers),
            timestamp=r.timestamp if r.HasField("timestamp") else None,
        )
        for r in message.records
    ]
    return AppendInput(
        records,
        message.match_seq_num if message.HasField("match_seq_num") else None,
        message.fencing_token if message.HasField("fencing_token") else None,
    )
