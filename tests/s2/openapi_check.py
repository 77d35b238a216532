"""Validate real S2 traffic against S2's published OpenAPI document with ``openapi-core``.

S2 publishes its REST API as ``s2/v1/openapi.json`` in ``s2-streamstore/s2-specs``; a copy is
at ``../shared/reference/s2-specs/openapi.json`` beside the repository. :func:`load_spec`
points the document's servers (``https://aws.s2.dev/v1``, ``https://{basin}.b.s2.dev/v1``) at
a local base URL so requests to the bundled server match its paths; nothing else is changed.

:class:`RecordingTransport` sits under an ``httpx2.AsyncClient`` and keeps every exchange
(request, status, headers, body bytes as the client read them). :func:`problems` then hands
each one to ``openapi-core`` (requests and unary responses) and checks each SSE event of a
read session against the document's ``ReadEvent`` schema with ``openapi-schema-validator``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

openapi_core = pytest.importorskip("openapi_core")
from openapi_core import OpenAPI  # noqa: E402
from openapi_core.datatypes import RequestParameters  # noqa: E402
from openapi_schema_validator import OAS31Validator  # noqa: E402
from werkzeug.datastructures import Headers, ImmutableMultiDict  # noqa: E402

#: S2's spec files: ``../shared/reference/s2-specs`` beside the repository (as in CI), or the
#: folder named by ``S2_SPECS_DIR``.
SPECS_DIR = Path(
    os.environ.get("S2_SPECS_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "reference" / "s2-specs"
)
SPEC_PATH = SPECS_DIR / "openapi.json"


def load_spec(base_url: str) -> dict[str, Any]:
    """The published document, its servers pointed at ``base_url`` + ``/v1``.

    Skips the test when the document is not beside the repository.
    """
    if not SPEC_PATH.is_file():
        pytest.skip(f"S2's OpenAPI document is not at {SPEC_PATH}")
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    spec = copy.deepcopy(spec)
    spec["servers"] = [{"url": f"{base_url}/v1"}]
    for item in spec["paths"].values():
        item.pop("servers", None)
    return spec


@dataclass
class Exchange:
    """One request and the response bytes the client consumed."""

    request: httpx2.Request
    body: bytes
    status: int = 0
    headers: httpx2.Headers = field(default_factory=httpx2.Headers)
    data: bytearray = field(default_factory=bytearray)


class _Tee(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, sink: bytearray) -> None:
        self.inner = inner
        self.sink = sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.sink += chunk
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2.AsyncHTTPTransport`` that records every exchange in ``exchanges``."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        exchange = Exchange(request, body)
        self.exchanges.append(exchange)
        response = await self.inner.handle_async_request(request)
        exchange.status = response.status_code
        exchange.headers = response.headers
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _Tee(response.stream, exchange.data)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Request:
    """An httpx request in openapi-core's ``Request`` protocol."""

    def __init__(self, exchange: Exchange) -> None:
        url = urlsplit(str(exchange.request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = exchange.request.method.lower()
        self.body: bytes | None = exchange.body or None
        self.content_type = exchange.request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query, keep_blank_values=True)),
            header=Headers(list(exchange.request.headers.items())),
        )


class _Response:
    """A recorded response in openapi-core's ``Response`` protocol."""

    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.content_type = exchange.headers.get("content-type", "")
        self.headers = Headers(list(exchange.headers.items()))
        self.data: bytes | None = bytes(exchange.data)


def _sse_events(data: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body as ``{"event", "data", "id"?}`` (``[DONE]`` left out)."""
    events = []
    for block in data.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("event", "data", "id"):
                fields[name] = value
        if "data" not in fields or fields["data"] == "[DONE]":
            continue
        event: dict[str, Any] = {"event": fields.get("event", "message")}
        event["data"] = fields["data"] if event["event"] == "error" else json.loads(fields["data"])
        if "id" in fields:
            event["id"] = fields["id"]
        events.append(event)
    return events


def _read_event_validator(spec: dict[str, Any]) -> OAS31Validator:
    """A validator for the document's ``ReadEvent`` schema (its ``$ref`` s resolved in it)."""
    schema = {"$ref": "#/components/schemas/ReadEvent", "components": spec["components"]}
    return OAS31Validator(schema)


def problems(spec: dict[str, Any], exchanges: list[Exchange]) -> list[str]:
    """Every way ``exchanges`` break the document; empty when all conform."""
    api = OpenAPI.from_dict(spec)
    read_event = _read_event_validator(spec)
    found: list[str] = []
    for exchange in exchanges:
        request = _Request(exchange)
        where = f"{exchange.request.method} {exchange.request.url} -> {exchange.status}"
        try:
            api.validate_request(request)
        except Exception as exc:
            found.append(f"request {where}: {exc!r} {getattr(exc, '__cause__', None)!r}")
            continue
        if exchange.headers.get("content-type", "").startswith("text/event-stream"):
            for event in _sse_events(bytes(exchange.data)):
                errors = [e.message for e in read_event.iter_errors(event)]
                if errors:
                    found.append(f"SSE event of {where}: {event}: {errors}")
            continue
        try:
            api.validate_response(request, _Response(exchange))
        except Exception as exc:
            cause = exc.__cause__
            detail = getattr(cause, "schema_errors", None) or cause
            found.append(
                f"response {where}: {exc!r} {detail!r} body={bytes(exchange.data)[:300]!r}"
            )
    return found
