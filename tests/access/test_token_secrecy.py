"""The S2 access token never reaches a response, an error or a log line, even when S2 rejects
it: the example app (start-up check off) answers 500 without ``Retry-After``, since a refused
token is a permanent failure, and logs one error naming ``S2_ACCESS_TOKEN``."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.s2_server import create_app as create_s2_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chat"
SECRET = "s2tok-0123456789-very-secret-abcdef"

pytestmark = pytest.mark.timeout(60)


def load_example(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("example_chat_app_secrecy", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "example_chat_app_secrecy", module)
    return module


USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}
REQUESTS = [
    ("POST", "/api/chat", {"id": "c1", "messages": [USER]}),
    ("GET", "/api/chat/c1/stream", None),
    ("DELETE", "/api/chat/c1/stream", None),
    ("GET", "/api/chat/c1/messages", None),
    ("POST", "/api/tanstack/chat", {"id": "c1", "messages": [USER]}),
    ("DELETE", "/api/tanstack/chat", {"id": "c1"}),
    ("GET", "/api/tanstack/chat/c1/messages", None),
    ("GET", "/api/tanstack/chat/replay?id=c1", None),
    ("GET", "/api/tanstack/chat/replay?id=c1&from=0", None),
]


async def test_rejected_token_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s2 = create_s2_app(access_token="the-right-token")
    async with serve_app(s2) as s2_url:
        for name, value in {
            "S2_ACCESS_TOKEN": SECRET,
            "S2_BASIN": "secrecy-basin",
            "S2_ACCOUNT_ENDPOINT": s2_url,
            "S2_BASIN_ENDPOINT": s2_url,
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("CHAT_MODEL", "CHAT_RECORDINGS"):
            monkeypatch.delenv(name, raising=False)
        app = load_example(monkeypatch).create_app(check_storage=False)
        responses: list[httpx.Response] = []
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            for method, path, body in REQUESTS:
                response = await client.request(method, path, json=body)
                responses.append(response)
                assert response.status_code == 500, (method, path, response.text)
                assert "retry-after" not in response.headers
                assert "misconfigured" in response.json()["detail"]
    for response in responses:
        assert SECRET not in response.text
        assert SECRET not in str(response.headers)
    assert "S2_ACCESS_TOKEN" in caplog.text  # the operator is told what to fix
    errors = [r for r in caplog.records if r.name == "resumable_chat.fastapi"]
    assert [r.levelno for r in errors if r.levelno >= logging.WARNING] == [logging.ERROR]
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            assert SECRET not in repr(record.exc_info[1])
