"""Request handling shared by the FastAPI routers: the ``authorize`` hook, JSON bodies
validated with pydantic (413/400/422 with readable JSON), their OpenAPI schema, cursors, the
start-up check, and the one answer every route gives to an S2 failure.

Used by :mod:`resumable_chat.fastapi`, :mod:`resumable_chat.fastapi.agui` and
:mod:`resumable_chat.fastapi.streams`; see the docs page "Concepts" for the layers.

S2 failures (:class:`StorageErrorPolicy`): every route of every router is built with
:func:`storage_route_class`, so an :class:`~resumable_chat.s2.errors.S2Error` that escapes a
handler becomes

- **503** ``{"detail": "chat storage is unavailable, try again later"}`` with
  ``Retry-After: 1`` when it is transient (S2 unreachable, timeouts, 408/429/5xx past the
  retry budget): the client may retry;
- **500** ``{"detail": "chat storage is misconfigured (...); the server log says what to
  fix"}`` without ``Retry-After`` when it is permanent (a refused token, a missing basin, an
  invalid request; :attr:`S2Error.permanent <resumable_chat.s2.errors.S2Error.permanent>`):
  retrying cannot help until the configuration changes.

The log gets the typed error (never the token) once per cause, not once per request.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Annotated, Any, Final, Protocol, TypeVar

from fastapi import HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from resumable_chat.chat import MessageNotStorableError, not_storable_response
from resumable_chat.log import LogGapError
from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import (
    BasinNotFoundError,
    S2AuthError,
    S2CertificateError,
    S2Error,
    S2InvalidError,
)
from resumable_chat.s2.prefixed import PrefixedBasin
from resumable_chat.sse import SseResponse

__all__ = [
    "CHAT_ID_PATTERN",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "STORAGE_UNAVAILABLE_TEXT",
    "Authorize",
    "ChatId",
    "StorageErrorPolicy",
    "authorize_chat",
    "decimal_cursor",
    "json_request_body",
    "read_body",
    "readable_errors",
    "resume_cursor",
    "startup_check",
    "storage_errors",
    "storage_policy",
    "storage_route_class",
    "validated_body",
]

logger = logging.getLogger("resumable_chat.fastapi")

#: ``authorize(request, chat_id)``: returns (or resolves to) ``None`` to allow the request and
#: raises ``fastapi.HTTPException`` (401, 403, or 404 to hide that the chat exists) to refuse.
#: ``chat_id`` is the id as the client sent it (already validated), not the stream name.
Authorize = Callable[[Request, str], Awaitable[None] | None]

#: The deepest nesting of arrays and objects a JSON request body may have (``{}`` is 1). A
#: chat request is ``{messages: [{parts: [{...}]}]}``, so message parts get 59 levels. Deeper
#: bodies get 400: what is accepted is stored and shown back by the history routes, never
#: dropped later by a fold or an encoder that cannot go that deep.
MAX_JSON_DEPTH: Final = 64

#: ``detail`` of the 503 answer to a transient S2 failure.
STORAGE_UNAVAILABLE_TEXT: Final = "chat storage is unavailable, try again later"


async def authorize_chat(authorize: Authorize | None, request: Request, chat_id: str) -> None:
    """Run the ``authorize`` hook (sync or async) for ``chat_id``; nothing when it is ``None``.

    Raises whatever the hook raises (``HTTPException`` for a refusal, which FastAPI answers
    with its status and ``{"detail": ...}``).
    """
    if authorize is None:
        return
    result = authorize(request, chat_id)
    if inspect.isawaitable(result):
        await result


_Model = TypeVar("_Model", bound=BaseModel)


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads and validates its JSON body itself.

    The model's JSON schema with its ``$defs`` inlined: pydantic's ``#/$defs/...`` references
    would not resolve inside an OpenAPI document (the models are not recursive).
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


def decimal_cursor(value: str, *, max_digits: int = 18) -> int | None:
    """``value`` (surrounding whitespace ignored) as a non-negative int when it is 1 to
    ``max_digits`` ASCII digits, else ``None``.

    Only ``0``-``9`` count: ``str.isdigit`` also accepts characters such as ``²`` that
    ``int()`` then refuses, which must be a 400, never a 500.
    """
    value = value.strip()
    if not value or len(value) > max_digits or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def resume_cursor(from_seq_num: int | None, last_event_id: str | None) -> int | None:
    """The cursor a replay ``GET`` asks for: ``?from=`` when given, else the ``Last-Event-ID``
    header, else ``None`` (from the start).

    A browser ``EventSource`` reconnects with ``Last-Event-ID`` set to the last SSE ``id`` it
    received (WHATWG HTML, "Server-sent events", "Processing model"); our ids are cursors,
    so such a reconnect resumes after what the client has. An empty header counts as absent.

    Args:
        from_seq_num: the ``from`` query parameter (already validated ≥ 0), or ``None``.
        last_event_id: the ``Last-Event-ID`` header, or ``None``.

    Returns:
        The cursor (an SSE id, ≥ 0), or ``None``.

    Raises:
        HTTPException: 400 when the header is not 1 to 18 ASCII digits.
    """
    if from_seq_num is not None or last_event_id is None or not last_event_id.strip():
        return from_seq_num
    cursor = decimal_cursor(last_event_id)
    if cursor is None:
        raise HTTPException(400, f"Last-Event-ID {last_event_id[:40]!r} is not a cursor of ours")
    return cursor


def _nesting_exceeds(data: Any, limit: int) -> bool:
    """Whether parsed JSON nests arrays/objects deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


async def read_body(request: Request, max_body_bytes: int) -> bytes | Response:
    """The request body, read up to ``max_body_bytes`` (bytes), or the 413 JSON response
    ``{"detail": "body over N bytes"}`` once it is over: checked on ``Content-Length`` before
    reading and while reading (a chunked body has none), so an oversized body is never held
    in memory whole. The body is then kept on the request: ``await request.body()`` and
    ``await request.json()`` return it afterwards.

    Raises Starlette's ``ClientDisconnect`` when the client leaves before the body arrived
    (the routers' route class, :func:`storage_route_class`, answers it).
    """
    length = request.headers.get("content-length")
    too_big = JSONResponse({"detail": f"body over {max_body_bytes} bytes"}, status_code=413)
    size = decimal_cursor(length, max_digits=30) if length is not None else None
    if size is not None and size > max_body_bytes:
        return too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > max_body_bytes:
            return too_big
    # Starlette's own cache of the body (``Request.body`` sets and reads it), so a later
    # ``await request.body()`` returns what was read here instead of "stream consumed".
    request._body = data = bytes(body)
    return data


async def validated_body(
    request: Request, model: type[_Model], max_body_bytes: int
) -> _Model | Response:
    """The request body parsed into ``model``, or the 4xx JSON response that explains why not.

    415 when the request names a ``Content-Type`` that is not JSON (``application/json`` or
    ``application/*+json``), or names none and comes from a browser (it carries ``Origin``
    or ``Sec-Fetch-Mode``; a request with neither, from a script or ``curl``, is read as
    JSON): the JS clients always send ``application/json`` (``ai`` ``HttpChatTransport``,
    ``@tanstack/ai-client`` ``fetchServerSentEvents``), while a form or ``text/plain`` body,
    or a ``Blob`` or ``ArrayBuffer`` body without a type (sent with no ``Content-Type``), is
    what another site can send cross-origin without a CORS preflight
    (https://fetch.spec.whatwg.org/#cors-safelisted-request-header), so it must not start a
    model call. 413 over ``max_body_bytes`` (bytes; checked on
    ``Content-Length`` and while reading), 400 for malformed JSON or JSON nested deeper than
    :data:`MAX_JSON_DEPTH`, 422 with ``{"detail": [{loc, msg, type}]}`` for a wrong shape.
    """
    headers = request.headers
    content_type = headers.get("content-type")
    if content_type is None:
        if "origin" in headers or "sec-fetch-mode" in headers:
            return JSONResponse(
                {"detail": "Content-Type must be application/json, and the request has none"},
                status_code=415,
            )
    elif not _is_json_media_type(content_type):
        return JSONResponse(
            {"detail": f"Content-Type must be application/json, not {content_type[:100]!r}"},
            status_code=415,
        )
    body = await read_body(request, max_body_bytes)
    if isinstance(body, Response):
        return body
    too_deep = JSONResponse(
        {"detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}, status_code=400
    )
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # nested deeper than the parser goes: far past the limit
        return too_deep
    except ValueError as exc:
        return JSONResponse({"detail": f"malformed JSON: {exc}"}, status_code=400)
    if isinstance(data, dict | list) and _nesting_exceeds(data, MAX_JSON_DEPTH):
        return too_deep
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return JSONResponse({"detail": readable_errors(exc)}, status_code=422)


def _is_json_media_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/<x>+json`` (RFC 6839), any
    parameters and letter case."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _refuse_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259), and cannot be stored."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a double (``1e999``) is refused: it would
    read as infinity, which cannot be stored as JSON."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is too large")
    return value


def readable_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors as ``[{loc, msg, type}]``: no input echoed back, no doc URLs."""
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


# -- S2 failures ---------------------------------------------------------------------------


def _misconfigured_detail(exc: S2Error) -> str:
    if isinstance(exc, S2AuthError):
        what = "the storage refused this server's credentials"
    elif isinstance(exc, BasinNotFoundError):
        what = "the storage basin does not exist"
    elif isinstance(exc, S2InvalidError):
        what = "the storage refused the request as invalid"
    elif isinstance(exc, S2CertificateError):
        what = "the storage's TLS certificate could not be verified"
    else:
        what = f"the storage answered {exc.status or 'an error'}"
    return f"chat storage is misconfigured ({what}); the server log says what to fix"


class StorageErrorPolicy:
    """How the routes answer an :class:`~resumable_chat.s2.errors.S2Error`, and how they log it.

    Permanent errors (``error.permanent``) get 500 without ``Retry-After`` and one ERROR line
    per cause (error type, HTTP status and S2 code) for the life of the policy: the fix is a
    configuration change, and one line says which. Transient ones get 503 with
    ``Retry-After: 1`` and one WARNING line per cause, repeated at most every
    ``relog_after_s`` seconds (with how many were not logged meanwhile) while the outage
    lasts. Messages never contain the access token (the errors do not carry it).

    Get the policy of a basin with :func:`storage_policy`: all the routers on one basin share
    it, so each cause is logged once per application, not once per router.
    """

    def __init__(self, *, relog_after_s: float = 60.0) -> None:
        self.relog_after_s = relog_after_s
        self._last_logged: dict[tuple[str, int | None, str | None], float] = {}
        self._unlogged: dict[tuple[str, int | None, str | None], int] = {}

    def log(self, exc: S2Error) -> None:
        """Log ``exc`` unless its cause was logged already (see the class docstring)."""
        cause = (type(exc).__name__, exc.status, exc.code)
        now = time.monotonic()
        last = self._last_logged.get(cause)
        if last is not None and (exc.permanent or now - last < self.relog_after_s):
            self._unlogged[cause] = self._unlogged.get(cause, 0) + 1
            logger.debug("chat storage failed again: %r", exc)
            return
        self._last_logged[cause] = now
        repeats = self._unlogged.pop(cause, 0)
        more = f" ({repeats} more since the last report)" if repeats else ""
        if exc.permanent:
            logger.error(
                "chat storage is misconfigured, routes answer 500 until it is fixed "
                "(logged once): %s: %s",
                type(exc).__name__,
                exc.message,
            )
        else:
            logger.warning(
                "chat storage is unavailable, routes answer 503 with Retry-After%s: %s: %s",
                more,
                type(exc).__name__,
                exc.message,
            )

    def response(self, exc: S2Error) -> JSONResponse:
        """Log ``exc`` (once per cause) and return the answer for it (class docstring)."""
        self.log(exc)
        if exc.permanent:
            return JSONResponse(
                {"detail": _misconfigured_detail(exc)},
                status_code=500,
                headers={"Cache-Control": "no-store"},
            )
        return JSONResponse(
            {"detail": STORAGE_UNAVAILABLE_TEXT},
            status_code=503,
            headers={"Retry-After": "1", "Cache-Control": "no-store"},
        )

    def http_exception(self, exc: S2Error) -> HTTPException:
        """The same answer as :meth:`response`, as an ``HTTPException`` to raise."""
        self.log(exc)
        if exc.permanent:
            return HTTPException(500, _misconfigured_detail(exc))
        return HTTPException(503, STORAGE_UNAVAILABLE_TEXT, headers={"Retry-After": "1"})


_POLICIES: weakref.WeakKeyDictionary[Basin, StorageErrorPolicy] = weakref.WeakKeyDictionary()
_DEFAULT_POLICY = StorageErrorPolicy()


def storage_policy(basin: Basin | None = None) -> StorageErrorPolicy:
    """The :class:`StorageErrorPolicy` of ``basin`` (the one under any
    :class:`~resumable_chat.s2.prefixed.PrefixedBasin` views), made on first use; a
    process-wide one when ``basin`` is ``None`` or cannot be weakly referenced."""
    root = basin
    while isinstance(root, PrefixedBasin):
        root = root.inner
    if root is None:
        return _DEFAULT_POLICY
    try:
        policy = _POLICIES.get(root)
        if policy is None:
            policy = _POLICIES[root] = StorageErrorPolicy()
    except TypeError:  # not weakly referenceable
        return _DEFAULT_POLICY
    return policy


def storage_route_class(policy: StorageErrorPolicy) -> type[APIRoute]:
    """An ``APIRoute`` class whose handler answers an escaping ``S2Error`` with
    ``policy.response`` (use it as ``APIRouter(route_class=...)``), and a message the log
    cannot keep (:class:`~resumable_chat.chat.MessageNotStorableError`) with 400/413. Other
    exceptions (``HTTPException`` included) pass through untouched, except Starlette's
    ``ClientDisconnect`` (the client hung up while its request body was on the way): that
    gets a 400 nobody reads and a DEBUG line, not a server error with a traceback. An
    ``S2Error`` in the body of an :class:`~resumable_chat.sse.SseResponse` that already
    began (a follower's read failing past its retries) is logged by the policy too, and a
    ``LogGapError`` (records trimmed under a follower that lagged that long) at INFO;
    either breaks the stream off instead of reaching the server as an exception with a
    traceback per follower."""

    def body_error(exc: Exception) -> bool:
        if isinstance(exc, LogGapError):  # trimmed under a follower that lagged that long
            logger.info("a follower broke off: %s", exc)
            return True
        if not isinstance(exc, S2Error):
            return False
        policy.log(exc)
        return True

    class StorageErrorRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    response = await handler(request)
                except S2Error as exc:
                    return policy.response(exc)
                except MessageNotStorableError as exc:
                    return not_storable_response(exc)
                except ClientDisconnect:
                    logger.debug(
                        "%s %s: the client left before its body arrived",
                        request.method,
                        request.url.path,
                    )
                    return JSONResponse(
                        {"detail": "the client disconnected before its request body arrived"},
                        status_code=400,
                    )
                if isinstance(response, SseResponse) and response.on_error is None:
                    response.on_error = body_error
                return response

            return handle

    return StorageErrorRoute


@contextlib.contextmanager
def storage_errors(basin: Basin | None = None) -> Iterator[None]:
    """For routes of your own: turn an ``S2Error`` raised in the block into the
    ``HTTPException`` the routers answer with (503 + ``Retry-After`` when transient, 500 when
    permanent), logged once per cause by ``storage_policy(basin)``."""
    try:
        yield
    except S2Error as exc:
        raise storage_policy(basin).http_exception(exc) from None


class _Checkable(Protocol):
    async def check(self) -> None: ...


def startup_check(
    target: _Checkable, enabled: bool = True
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]] | None:
    """A router ``lifespan`` that runs ``await target.check()`` at start-up (``None`` when
    not ``enabled``).

    FastAPI (0.112.2 and later) runs the lifespans of included routers with the app's, so a
    misconfigured S2 (refused token, missing basin, unreachable endpoint) stops the app at
    start-up with the typed error, instead of failing every request later. The error is also
    logged as one ERROR line naming the cause.
    """
    if not enabled:
        return None

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            await target.check()
        except S2Error as exc:
            logger.error("chat storage check failed at start-up: %s", exc.message)
            raise
        yield

    return lifespan


#: Chat ids accepted by the routes: 1 to 200 of ``A-Z a-z 0-9 _ - . :``, not starting with
#: ``.``; with the ``chat-`` prefix they are always valid S2 stream names.
CHAT_ID_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,199}$"

#: A chat id path parameter, validated against :data:`CHAT_ID_PATTERN`.
ChatId = Annotated[str, Path(pattern=CHAT_ID_PATTERN, description="The chat id.")]

#: Default request body limit (bytes) of the POST route.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
