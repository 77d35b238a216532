"""The bundled S2 server's data model and seams: limits, basins and streams in memory, the
fault seam (:class:`Faults`) and dropped connections."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from resumable_chat.s2.memory import MemoryBasin

EXTRA_HINT: Final = "pip install 'resumable-chat[testing]'"

T = TypeVar("T")
Format = Literal["raw", "base64"]

#: s2-lite caps the ``wait`` of unary reads at 60 s (``MAX_UNARY_READ_WAIT``).
MAX_UNARY_WAIT_S: Final = 60
#: List endpoints return at most 1000 items (the ``limit`` default and maximum).
MAX_LIST_LIMIT: Final = 1000
_BASIN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{6,46}[a-z0-9]$")
_LAST_EVENT_ID = re.compile(r"^([0-9]+),([0-9]+),([0-9]+)$")
_SSE_HEADERS: Final = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
_DONE: Final = "data: [DONE]\n\n"
#: What ``GET /streams/{stream}`` returns: s2-lite's default stream configuration.
_DEFAULT_STREAM_CONFIG: Final[dict[str, Any]] = {
    "storage_class": "express",
    "retention_policy": {"age": 604800},
    "timestamping": {"mode": "client-prefer", "uncapped": False},
    "delete_on_empty": {"min_age_secs": 0},
}
#: The operations of S2's OpenAPI document that this server implements (operationIds).
IMPLEMENTED_OPERATIONS: Final = (
    "list_basins",
    "create_basin",
    "get_basin_config",
    "ensure_basin",
    "reconfigure_basin",
    "delete_basin",
    "list_streams",
    "create_stream",
    "get_stream_config",
    "ensure_stream",
    "reconfigure_stream",
    "delete_stream",
    "append",
    "read",
    "check_tail",
)
#: Operations of the document answered with 501 ``not_implemented`` (as s2-lite does).
NOT_IMPLEMENTED_OPERATIONS: Final = (
    "list_access_tokens",
    "issue_access_token",
    "revoke_access_token",
    "account_metrics",
    "basin_metrics",
    "stream_metrics",
)
_PROTO_TYPES: Final = frozenset({"application/protobuf", "application/x-protobuf"})
_S2S: Final = "s2s/proto"
_S2S_HEADERS: Final = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
#: Header that tells what ``ensure_*`` / ``create_*`` did (s2-lite ``PROVISION_RESULT_HEADER``).
_PROVISION_RESULT: Final = "s2-provision-result"
_MAX_REQUEST_TOKEN: Final = 36


#: What :meth:`Faults.event_fault` may do to an SSE read session.
SessionFault = Literal["cut", "cut_mid_event", "error"]


class Faults:
    """The fault-injection seam: the server consults one of these on every request.

    The default injects nothing. Subclass it and pass it as ``create_app(faults=...)`` to add
    latency (sleep in a hook), fail requests (return a response, e.g. 500 or 429 with
    ``retry-after-ms``) or cut SSE sessions.
    """

    async def before_request(self, request: Request, operation: str) -> Response | None:
        """Called after routing, before anything else; a returned response is sent instead.
        ``request.path_params`` holds the decoded ``basin`` / ``stream`` names of the path;
        404, 405 and 501 answers are sent without calling the hooks.

        ``operation`` is the S2 operation id: ``list_basins``, ``create_basin``,
        ``ensure_basin``, ``get_basin_config``, ``reconfigure_basin``, ``delete_basin``,
        ``list_streams``, ``create_stream``, ``ensure_stream``, ``get_stream_config``,
        ``reconfigure_stream``, ``delete_stream``, ``append`` (unary), ``append_session``
        (``s2s/proto``), ``read`` (unary), ``read_session`` (SSE or ``s2s/proto``) or
        ``check_tail``.
        """
        return None

    async def after_request(self, request: Request, operation: str, response: Response) -> Response:
        """Called with the response of a handled request (the operation took effect); the
        returned response is sent instead. Return :func:`drop_connection` to lose the
        acknowledgement: the client sees the connection break after the write happened.
        """
        return response

    async def before_event(self, request: Request, event: str, index: int) -> bool:
        """Called before each SSE ``batch`` or ``ping`` event (``index`` counts from 0 per
        session). Returning ``True`` ends the response there, without ``[DONE]``, as a
        dropped connection looks to the client.
        """
        return False

    async def event_fault(self, request: Request, event: str, index: int) -> SessionFault | None:
        """Called before each SSE ``batch`` or ``ping`` event (``index`` counts from 0 per
        session); the default asks :meth:`before_event`.

        Returns ``None`` (send the event), ``"cut"`` (end the response there, without
        ``[DONE]``), ``"cut_mid_event"`` (send the first half of the event, then end: the
        client holds a partial event when the connection drops) or ``"error"`` (an S2
        ``error`` event with code ``unavailable``, then the end).
        """
        return "cut" if await self.before_event(request, event, index) else None


class Latency(Faults):
    """Faults that only add S2's latency: every append is acknowledged (and its records
    become readable) ``append_ms`` after it arrives, and every read, read session and
    ``check_tail`` answers ``read_ms`` after it arrives.

    S2 acknowledges an append once it is durable, in about 40 ms on the Express storage class
    and about 400 ms on Standard (storage classes, https://s2.dev/docs); records are readable
    once acknowledged. Use ``--append-latency-ms`` / ``--read-latency-ms`` of
    ``python -m resumable_chat.testing.s2_server``.
    """

    _APPENDS = frozenset({"append", "append_session"})
    _READS = frozenset({"read", "read_session", "check_tail"})

    def __init__(self, append_ms: float, read_ms: float) -> None:
        self.append_s = append_ms / 1000
        self.read_s = read_ms / 1000

    async def before_request(self, request: Request, operation: str) -> Response | None:
        """Sleep the operation's latency (appends before they take effect)."""
        if operation in self._APPENDS and self.append_s:
            await asyncio.sleep(self.append_s)
        elif operation in self._READS and self.read_s:
            await asyncio.sleep(self.read_s)
        return None


class ConnectionDroppedError(Exception):
    """Raised inside the ASGI app by :func:`drop_connection` to break the connection."""


class _DroppedResponse(Response):
    """Sends the status line, headers and half of the body, then breaks the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.body, response.status_code, media_type=response.media_type)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionDroppedError("fault injected: connection dropped mid-response")


def drop_connection(response: Response) -> Response:
    """``response`` cut short: status and headers, half the body, then a broken connection.

    The server logs the :class:`ConnectionDroppedError` it raises; the client gets a transport
    error (httpx ``RemoteProtocolError``) and cannot know whether the request took effect.
    """
    return _DroppedResponse(response)


class _HttpError(Exception):
    """A response to send at once: status and S2 ``ErrorInfo`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message}


@dataclass(eq=False, slots=True)
class _StreamMeta:
    name: str
    created_at: datetime
    #: The stream's ``StreamConfig`` as given (fields left out take the basin's defaults).
    config: dict[str, Any] = field(default_factory=dict)
    request_token: str | None = None


@dataclass(eq=False, slots=True)
class _Basin:
    name: str
    created_at: datetime
    create_stream_on_append: bool
    create_stream_on_read: bool
    memory: MemoryBasin
    streams: dict[str, _StreamMeta] = field(default_factory=dict)
    default_stream_config: dict[str, Any] | None = None
    stream_cipher: str | None = None
    request_token: str | None = None


@dataclass(slots=True)
class _ReadQuery:
    seq_num: int | None
    timestamp: int | None
    tail_offset: int | None
    count: int | None
    bytes: int | None
    until: int | None
    wait: int | None
    clamp: bool


def _may_follow(query: _ReadQuery) -> bool:
    """Whether a session may wait for new records (s2-lite ``ReadEnd::may_follow``)."""
    unbounded = query.count is None and query.bytes is None and query.until is None
    return unbounded or (query.wait is not None and query.wait > 0)
