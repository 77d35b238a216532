"""Basin and stream configuration of the bundled S2 server, validated as S2's OpenAPI
document describes it, and request bodies (size, media type, compression)."""

from __future__ import annotations

import gzip
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect, Request

from resumable_chat.testing.s2_compat.model import (
    _DEFAULT_STREAM_CONFIG,
    _MAX_REQUEST_TOKEN,
    _Basin,
    _HttpError,
    _StreamMeta,
)

# -- configuration -------------------------------------------------------------------------

_U64 = Annotated[int, Field(ge=0, lt=2**64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Age(_Strict):
    age: _U64


class _Infinite(_Strict):
    infinite: dict[str, Any]


class _Timestamping(_Strict):
    mode: Literal["client-prefer", "client-require", "arrival"] | None = None
    uncapped: bool | None = None


class _DeleteOnEmpty(_Strict):
    min_age_secs: _U64 | None = None


class _StreamConfigIn(_Strict):
    """``StreamConfig`` / ``StreamReconfiguration`` of the OpenAPI document (shapes only)."""

    storage_class: Literal["standard", "express"] | None = None
    retention_policy: _Age | _Infinite | None = None
    timestamping: _Timestamping | None = None
    delete_on_empty: _DeleteOnEmpty | None = None


class _BasinConfigIn(_Strict):
    """``BasinConfig`` / ``BasinReconfiguration`` of the OpenAPI document (shapes only)."""

    create_stream_on_append: bool | None = None
    create_stream_on_read: bool | None = None
    default_stream_config: _StreamConfigIn | None = None
    stream_cipher: Literal["aegis-256", "aes-256-gcm"] | None = None


def _validated(model: type[BaseModel], value: Any, what: str) -> dict[str, Any]:
    """``value`` checked against ``model``: the fields it sets (nulls kept), as plain JSON.

    Raises 400 ``bad_json`` for a wrong shape and 422 ``invalid`` for a retention age of 0.
    """
    if not isinstance(value, dict):
        raise _HttpError(400, "bad_json", f"{what} must be a JSON object")
    try:
        parsed = model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise _HttpError(400, "bad_json", f"invalid {what}: {where}: {error['msg']}") from None
    data: dict[str, Any] = parsed.model_dump(mode="json", exclude_unset=True)
    retention = data.get("retention_policy")
    if isinstance(retention, dict) and retention.get("age") == 0:
        raise _HttpError(422, "invalid", "retention age must be greater than 0 seconds")
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A reconfiguration applied: omitted fields stay, ``null`` resets, objects merge."""
    merged = dict(base)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key != ("retention_policy")
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _effective_stream_config(basin: _Basin, meta: _StreamMeta) -> dict[str, Any]:
    """The full ``StreamConfig``: the stream's own, then the basin default, then S2's."""
    config = _merge(_DEFAULT_STREAM_CONFIG, basin.default_stream_config or {})
    config = _merge(config, meta.config)
    timestamping = config.get("timestamping") or {}
    config["timestamping"] = {
        "mode": timestamping.get("mode") or "client-prefer",
        "uncapped": bool(timestamping.get("uncapped")),
    }
    return config


def _request_token(request: Request) -> str | None:
    """The ``s2-request-token`` header (at most 36 bytes: 400 ``bad_header`` otherwise)."""
    token = request.headers.get("s2-request-token")
    if token is not None and len(token.encode()) > _MAX_REQUEST_TOKEN:
        raise _HttpError(400, "bad_header", "s2-request-token is longer than 36 bytes")
    return token


def _media_type(value: str | None) -> str:
    """The first media type of a ``Content-Type`` / ``Accept`` value, lower case, no params.

    s2-lite (``api/src/mime.rs``) looks only at the first type of ``Accept``.
    """
    if not value:
        return ""
    return value.split(",")[0].split(";")[0].strip().lower()


async def _request_body(request: Request) -> bytes:
    """The request body, decoded from ``Content-Encoding: gzip`` or ``zstd`` if so sent.

    Raises 400 ``bad_header`` for another encoding and 400 ``bad_json`` for a body that does
    not decode or never arrived whole (the client hung up mid-body: the answer goes nowhere,
    but nothing is written and no exception reaches the ASGI server).
    """
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise _HttpError(
            400, "bad_json", "the client hung up before its body was complete"
        ) from None
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding == "identity" or not raw:
        return raw
    try:
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                data: bytes = reader.read()
            return data
    except ImportError:
        raise _HttpError(400, "bad_header", "zstd bodies need the zstandard package") from None
    except Exception as exc:
        raise _HttpError(400, "bad_json", f"cannot decode the {encoding} body: {exc}") from None
    raise _HttpError(400, "bad_header", f"unsupported Content-Encoding {encoding!r}")
