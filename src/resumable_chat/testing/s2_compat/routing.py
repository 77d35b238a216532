"""Routing for the bundled S2 server: Starlette ``Route`` s matched on the raw request path.

S2 basin and stream names are path segments (S2 REST v1, https://s2.dev/docs/api: e.g.
``GET /v1/streams/{stream}/records``) and a stream name may hold ``/``, which clients send
percent-encoded as ``%2F``. Starlette matches routes against the decoded ``scope["path"]``,
where that ``%2F`` has become a ``/``, so :class:`RawPathRoute` matches against ASGI's
``raw_path`` instead, and its ``{name:s2_segment}`` parameters are percent-decoded after the
match. Handlers, fault hooks and ``request.url`` still see the ordinary decoded path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from resumable_chat.testing.s2_compat.config import _media_type
from resumable_chat.testing.s2_compat.model import _S2S


class _SegmentConvertor(Convertor[str]):
    """One raw path segment, possibly empty, percent-decoded: ``chat%2F42`` → ``chat/42``."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("s2_segment", _SegmentConvertor())


class RawPathRoute(Route):
    """A Starlette ``Route`` matched against the raw, still percent-encoded request path.

    ``path`` is a Starlette path pattern; use ``{name:s2_segment}`` for a basin or stream name
    (one raw segment, empty allowed, handed to the endpoint percent-decoded in
    ``request.path_params``). ``methods`` are exactly the methods taken (no implied ``HEAD``);
    ``None`` takes every method. Another method on a matching path is a 405 (Starlette's
    ``HTTPException``). Without ``raw_path`` in the ASGI scope, the decoded path is used.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Collection[str] | None,
        name: str | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)
        self.methods = None if methods is None else {m.upper() for m in methods}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Starlette's match, made on the undecoded ``raw_path`` (so an escaped ``/`` in a
        stream name stays inside its path parameter), query string left out."""
        raw = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes):
            # raw_path carries no query string per ASGI, but some test transports add it
            path = raw.decode("latin-1").split("?", 1)[0]
            return super().matches({**scope, "path": path})
        return super().matches(scope)


def operation_name(name: str, request: Request) -> str:
    """The fault plan's name of the operation: a ``read`` or ``append`` carrying S2's session
    framing (``Content-Type: s2s/proto``) is ``read_session`` / ``append_session``, and so is a
    ``read`` asking for SSE (``Accept: text/event-stream``); any other ``name`` is returned."""
    if name in ("read", "append"):
        if _media_type(request.headers.get("content-type")) == _S2S:
            return f"{name}_session"
        if name == "read" and "text/event-stream" in request.headers.get("accept", ""):
            return "read_session"
    return name


def health_route(path: str) -> RawPathRoute:
    """``path`` answering ``OK`` (text/plain, 200) to every method: ``/health``, ``/ping``."""

    async def ok(request: Request) -> Response:
        return PlainTextResponse("OK")

    return RawPathRoute(path, ok, methods=None)


def not_implemented_route(path: str, *methods: str) -> RawPathRoute:
    """``path`` answering ``methods`` with 501 ``{"code": "not_implemented", ...}``, as s2-lite
    does for the access-token and metrics operations of S2's OpenAPI document. The message
    names the family, the first segment after ``/v1/`` (``access-tokens``, ``metrics``)."""
    family = path.split("/")[2]
    message = f"{family} operations are not implemented by this test server"

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"code": "not_implemented", "message": message}, 501)

    return RawPathRoute(path, endpoint, methods=methods)


async def s2_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 (no route matches) or 405 (a route matches the path, not the method) in
    S2's error shape: ``{"code": "bad_path", "message": ...}`` with that status."""
    status = getattr(exc, "status_code", 500)
    message = "no such S2 endpoint" if status == 404 else "method not allowed here"
    return JSONResponse({"code": "bad_path", "message": message}, status)
