"""Request handling shared by the FastAPI routers: the ``authorize`` hook, JSON bodies
validated with pydantic (413/400/422 with readable JSON), their OpenAPI schema, and S2
failures answered with 503.

Used by :mod:`resumable_chat.fastapi`, :mod:`resumable_chat.fastapi_agui` and
:mod:`resumable_chat.fastapi_streams`; it sits in the HTTP routes layer of DESIGN.md §3.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from .s2.errors import S2Error

__all__ = [
    "Authorize",
    "authorize_chat",
    "json_request_body",
    "readable_errors",
    "storage_errors",
    "validated_body",
]

logger = logging.getLogger("resumable_chat.fastapi")

#: ``authorize(request, chat_id)``: returns (or resolves to) ``None`` to allow the request and
#: raises ``fastapi.HTTPException`` (401, 403, or 404 to hide that the chat exists) to refuse.
#: ``chat_id`` is the id as the client sent it (already validated), not the stream name.
Authorize = Callable[[Request, str], Awaitable[None] | None]


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


async def validated_body(
    request: Request, model: type[_Model], max_body_bytes: int
) -> _Model | Response:
    """The request body parsed into ``model``, or the 4xx JSON response that explains why not.

    413 over ``max_body_bytes`` (bytes; checked on ``Content-Length`` and while reading),
    400 for malformed JSON, 422 with ``{"detail": [{loc, msg, type}]}`` for a wrong shape.
    """
    length = request.headers.get("content-length")
    too_big = JSONResponse({"detail": f"body over {max_body_bytes} bytes"}, status_code=413)
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        return too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > max_body_bytes:
            return too_big
    try:
        data = json.loads(body)
    except ValueError as exc:
        return JSONResponse({"detail": f"malformed JSON: {exc}"}, status_code=400)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return JSONResponse({"detail": readable_errors(exc)}, status_code=422)


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn an S2 failure into 503 ``{"detail": ...}`` with ``Retry-After``, logging why.

    The client learns only that storage is unavailable; the log line carries the typed
    error (which names ``S2_ACCESS_TOKEN`` on 401/403 but never contains the token).
    """
    try:
        yield
    except S2Error as exc:
        logger.error("chat storage failed: %r", exc)
        raise HTTPException(
            503, "chat storage is unavailable, try again later", headers={"Retry-After": "1"}
        ) from None


def readable_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors as ``[{loc, msg, type}]``: no input echoed back, no doc URLs."""
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
