"""TEST-ONLY fault injection for the example app: drop a durable AG-UI stream mid-answer.

Enabled only when the app runs with ``CHAT_FAULT_INJECTION=1`` (the end-to-end tests set it;
never set it in production). A POST to ``/api/agui`` that carries the header
``X-Test-Cut-After-Events: N`` and no ``Last-Event-ID`` gets its first ``N`` SSE events, then
half of the next one, and then the connection is dropped without ending the response, as a
crashed proxy or a lost network would. The run itself goes on (a client disconnect never
stops it), so the client's automatic reconnect (the same POST with ``Last-Event-ID``) gets
the rest from the log. Reconnects and GETs are never cut.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("examples.chat.fault_injection")

CUT_HEADER = b"x-test-cut-after-events"


class _Cut(Exception):
    """Raised through the response to abandon it mid-body."""


class CutAfterEvents:
    """ASGI middleware: cut POST responses under ``path`` after the requested event count."""

    def __init__(self, app: ASGIApp, path: str = "/api/agui") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        wanted = headers.get(CUT_HEADER, b"")
        if not wanted.isdigit() or b"last-event-id" in headers:
            await self.app(scope, receive, send)
            return
        remaining = int(wanted)
        pending = b""

        async def cutting_send(message: Message) -> None:
            nonlocal remaining, pending
            if message["type"] != "http.response.body":
                await send(message)
                return
            pending += message.get("body", b"")
            passed = b""
            while True:
                end = pending.find(b"\n\n")
                if end == -1:
                    break
                event, pending = pending[: end + 2], pending[end + 2 :]
                if b"data:" in event:
                    if remaining == 0:
                        passed += event[: len(event) // 2]
                        await send(
                            {"type": "http.response.body", "body": passed, "more_body": True}
                        )
                        raise _Cut
                    remaining -= 1
                passed += event
            await send({**message, "body": passed, "more_body": message.get("more_body", False)})

        try:
            await self.app(scope, receive, cutting_send)
        except _Cut:
            logger.info("fault injection: dropped the connection of a POST %s", self.path)
