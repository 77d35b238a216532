"""Fuzz the example app's OpenAPI schema with schemathesis against a real uvicorn subprocess.

Every generated request (valid and invalid data, ``MAX_EXAMPLES`` per operation and mode)
must get an answer below 500 within the timeout: JSON bodies are read to the end, SSE
responses (live answers and the never-ending TanStack replay) only to their status and
headers, so nothing hangs. Afterwards
the app still serves a normal chat and its log holds no traceback.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import given  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from helpers import fuzz_settings  # noqa: E402

#: Generated requests per API operation (8 of them) and mode (valid and invalid data).
MAX_EXAMPLES = 15
#: Seconds a fuzzed request may take to answer (its headers, or its whole non-SSE body).
TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def fuzz_app(start_app: Callable[..., Any]) -> Any:
    """The example app (offline demo model, no pacing, embedded log) for this module."""
    return start_app(CHAT_TOKEN_DELAY_MS="0")


def _request_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """httpx options from schemathesis' transport kwargs (a requests-style dict)."""
    options: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params") or None,
        "headers": kwargs.get("headers") or None,
        "cookies": kwargs.get("cookies") or None,
    }
    if "json" in kwargs:
        options["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        options["content"] = data if isinstance(data, str | bytes) else json.dumps(data)
    return options


@pytest.mark.timeout(300)
def test_fuzzed_requests_get_no_5xx_and_never_hang(fuzz_app: Any) -> None:
    # schemathesis' pytest integration does not run on pytest 9 yet, so each operation's
    # hypothesis strategy is driven here directly.
    schema = schemathesis.openapi.from_url(fuzz_app.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    with httpx.Client(timeout=TIMEOUT_S) as client:
        for operation, mode in itertools.product(operations, GenerationMode):

            @given(case=operation.as_strategy(generation_mode=mode))
            @fuzz_settings(MAX_EXAMPLES)
            def fuzz(case: Any) -> None:
                options = _request_options(case.as_transport_kwargs(base_url=fuzz_app.base_url))
                with client.stream(**options) as response:
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        response.read()
                    assert response.status_code < 500, (
                        f"{case.as_curl_command()} -> {response.status_code}\n{fuzz_app.log_tail()}"
                    )

            fuzz()


def test_app_still_serves_a_normal_chat_after_fuzzing(fuzz_app: Any) -> None:
    chat_id = "after-fuzz-1"
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "still there?"}]}
    with httpx.Client(base_url=fuzz_app.base_url, timeout=TIMEOUT_S) as client:
        response = client.post("/api/chat", json={"id": chat_id, "messages": [user]})
        assert response.status_code == 200
        data = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
        assert data[-1] == "[DONE]" and json.loads(data[-2])["type"] == "finish"
        assert client.get(f"/api/chat/{chat_id}/stream").status_code in (200, 204)
    log = fuzz_app.log_tail(1_000_000)
    assert "Traceback" not in log, log[-4000:]
