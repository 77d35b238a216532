"""``respond_before_claim``: the live answer starts when the model's first chunk arrives, even
while the claim's S2 round trips are in flight (the claim's append is held here with a
:class:`~resumable_chat.testing.fault_plan.FaultPlan`). What the user sees:

- the first chunks arrive before S2 has accepted the claim, and the stored answer equals the
  live one once it has;
- a claim lost to another instance after the answer began ends it with the error terminal
  ``Stream already in use`` (the real AI SDK client shows an error), its model is closed and
  nothing of it is stored; a conflict known before the first chunk is still a 409;
- a stop or an S2 failure while the claim is in flight ends the answer the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from helpers import parse_sse, user_message
from js_client import run_ui_stream_validator
from resumable_chat import StopSignal, create_resumable_chat
from resumable_chat.chat.core import IN_USE_TEXT, STORAGE_FAILED_TEXT
from resumable_chat.fastapi import ai_sdk_router
from resumable_chat.log import Ownership
from resumable_chat.s2 import MemoryBasin
from resumable_chat.testing.app_server import serve_app
from resumable_chat.testing.fault_basin import FaultPlanBasin
from resumable_chat.testing.fault_plan import FaultPlan

pytestmark = pytest.mark.timeout(30)


class Model:
    """A model whose first delta comes at once and whose rest waits for :attr:`more`."""

    def __init__(self) -> None:
        self.more = asyncio.Event()
        self.closed = asyncio.Event()
        self.calls = 0

    async def __call__(
        self, messages: list[dict[str, Any]], signal: StopSignal
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        try:
            yield {"type": "text-start", "id": "t"}
            yield {"type": "text-delta", "id": "t", "delta": "a"}
            await self.more.wait()
            for word in (" b", " c"):
                yield {"type": "text-delta", "id": "t", "delta": word}
            yield {"type": "text-end", "id": "t"}
            yield {"type": "finish"}
        finally:
            self.closed.set()


class Instance:
    """One app instance with ``respond_before_claim`` whose S2 calls go through ``plan``."""

    def __init__(self, inner: MemoryBasin, plan: FaultPlan) -> None:
        self.model = Model()
        self.chat = create_resumable_chat(
            basin=FaultPlanBasin(inner, plan),
            respond_before_claim=True,
            ownership=Ownership(),
        )
        self.app = FastAPI()
        self.app.include_router(ai_sdk_router(self.chat, self.model))


async def read_until(lines: AsyncIterator[str], body: list[str], marker: str) -> None:
    """Read SSE lines into ``body`` until one holds ``marker``."""
    async for line in lines:
        body.append(line)
        if marker in line:
            return
    raise AssertionError(f"the response ended before {marker!r}: {body}")


def sse_text(body: list[str]) -> str:
    return "".join(line + "\n" for line in body)


def chunks(body: list[str]) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in parse_sse(sse_text(body)) if data != "[DONE]"]


def post(chat_id: str, text: str = "hi") -> dict[str, Any]:
    return {"id": chat_id, "messages": [user_message(text)]}


class Answer:
    """A first turn POSTed to an instance and read up to its first delta; ``client`` talks
    to the same instance."""

    def __init__(self, client: httpx.AsyncClient, lines: AsyncIterator[str]) -> None:
        self.client = client
        self.lines = lines
        self.body: list[str] = []

    async def rest(self) -> list[str]:
        """Read the response to its end; every line read."""
        async for line in self.lines:
            self.body.append(line)
        return self.body

    async def history(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = (await self.client.get("/api/chat/c1/messages")).json()
        return messages


@contextlib.asynccontextmanager
async def begun(app: FastAPI) -> AsyncIterator[Answer]:
    """Serve ``app``, POST a first turn of chat ``c1`` and read until its first delta."""
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("POST", "/api/chat", json=post("c1")) as response:
            assert response.status_code == 200
            answer = Answer(client, response.aiter_lines())
            await read_until(answer.lines, answer.body, '"delta":"a"')
            yield answer


async def test_the_first_chunks_go_out_while_the_claim_is_held() -> None:
    a = Instance(MemoryBasin(), plan := FaultPlan())
    claim = plan.hold("append", times=1)
    async with begun(a.app) as answer:
        assert not claim.gate.is_set() and a.chat.running("chat-c1") is None
        assert not [line for line in answer.body if line.startswith("id:")], answer.body
        claim.release()
        a.model.more.set()
        body = await answer.rest()
        history = await answer.history()
    await a.chat.aclose()
    live = chunks(body)
    assert [c["type"] for c in live] == [
        "start",
        "text-start",
        "text-delta",
        "text-delta",
        "text-delta",
        "text-end",
        "finish",
    ]
    assert [line for line in body if line.startswith("id:")], "chunks after the claim have ids"
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["id"] == live[0]["messageId"]
    assert history[1]["parts"][-1]["text"] == "a b c"
    result = run_ui_stream_validator(sse_text(body))
    assert result["ok"] and result["message"]["parts"][-1]["text"] == "a b c", result


async def test_a_claim_lost_after_the_answer_began_ends_it_with_an_error() -> None:
    inner, plan = MemoryBasin(), FaultPlan()
    a = Instance(inner, plan)
    b = create_resumable_chat(basin=inner, ownership=Ownership())  # another instance
    b_model = Model()
    claim = plan.hold("append", times=1)
    async with begun(a.app) as answer:
        won = await b.make_resumable(
            "chat-c1",
            lambda signal: b_model([], signal),
            message=user_message("from b", "ub"),
            new_chat=True,
        )
        assert won.status_code == 200
        claim.release()
        body = await answer.rest()
        await asyncio.wait_for(a.model.closed.wait(), 5)
        b_model.more.set()
        generation = b.running("chat-c1")
        assert generation is not None
        await asyncio.wait_for(generation.task, 5)
        history = await answer.history()
    await a.chat.aclose()
    await b.aclose()
    live = chunks(body)
    assert live[-1] == {"type": "error", "errorText": IN_USE_TEXT}, live
    assert "data: [DONE]" in body[-2:], body
    # only the winner's turn is in the log
    assert [(m["role"], m["id"]) for m in history][:1] == [("user", "ub")]
    assert len(history) == 2 and history[1]["parts"][-1]["text"] == "a b c"
    result = run_ui_stream_validator(sse_text(body))
    assert result["status"] == "error" and IN_USE_TEXT in (result["error"] or ""), result


async def test_a_conflict_known_before_the_first_chunk_is_still_409() -> None:
    inner = MemoryBasin()
    a = Instance(inner, FaultPlan())
    b = create_resumable_chat(basin=inner, ownership=Ownership())
    b_model = Model()
    won = await b.make_resumable(
        "chat-c1", lambda signal: b_model([], signal), message=user_message(), new_chat=True
    )
    assert won.status_code == 200

    async def silent(messages: list[dict[str, Any]], signal: StopSignal) -> Any:
        await asyncio.Event().wait()  # the model's first token never comes
        yield {}

    app = FastAPI()
    app.include_router(ai_sdk_router(a.chat, silent))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post("/api/chat", json=post("c1"))
    assert response.status_code == 409 and response.text == IN_USE_TEXT
    b_model.more.set()
    await a.chat.aclose()
    await b.aclose()


async def test_a_stop_sent_while_the_claim_is_held_stops_the_answer() -> None:
    a = Instance(MemoryBasin(), plan := FaultPlan())
    claim = plan.hold("append", times=1)
    async with begun(a.app) as answer:
        stop = asyncio.create_task(answer.client.delete("/api/chat/c1/stream"))
        claim.release()  # the stop arrives during the claim or just after: it stops either way
        assert (await stop).status_code == 202
        body = await answer.rest()
        history = await answer.history()
    await a.chat.aclose()
    assert chunks(body)[-1] == {"type": "abort"}, body
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["parts"][-1]["text"] == "a"  # what the live client saw, stored
    assert history[1]["metadata"] == {"stopped": True}


async def test_an_s2_failure_of_the_claim_after_the_answer_began() -> None:
    a = Instance(MemoryBasin(), plan := FaultPlan())
    plan.fail("append", times=1)  # the claim fails (S2 unavailable past its retries) ...
    read_back = plan.hold("read", times=1)  # ... and its read-back is slow
    async with begun(a.app) as answer:
        read_back.release()
        body = await answer.rest()
        assert await answer.history() == []
        a.model.more.set()
        again = await answer.client.post("/api/chat", json=post("c1"))  # the next try works
        history = await answer.history()
    await a.chat.aclose()
    assert chunks(body)[-1] == {"type": "error", "errorText": STORAGE_FAILED_TEXT}
    assert a.model.closed.is_set()
    assert again.status_code == 200 and [m["role"] for m in history] == ["user", "assistant"]


def test_respond_before_claim_needs_overlap_claim() -> None:
    with pytest.raises(ValueError, match="overlap_claim"):
        create_resumable_chat(basin=MemoryBasin(), respond_before_claim=True, overlap_claim=False)


async def test_closing_the_chat_while_a_claim_is_held_ends_the_answer() -> None:
    inner, plan = MemoryBasin(), FaultPlan()
    a = Instance(inner, plan)
    plan.hold("append", times=None)  # S2 never acknowledges the claim
    response = await a.chat.make_resumable(
        "chat-c1", lambda signal: a.model([], signal), message=user_message(), new_chat=True
    )
    assert response.status_code == 200
    await a.chat.aclose(drain_timeout_s=0.05)
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert a.model.closed.is_set()
    body = b"".join([frame async for frame in response.body_iterator]).decode()
    ending = [json.loads(data) for _, data in parse_sse(body) if data != "[DONE]"][-1]
    assert ending == {"type": "error", "errorText": STORAGE_FAILED_TEXT}


async def test_a_request_cancelled_before_its_claim_starts_closes_the_model() -> None:
    """The source gets one loop turn before the claim starts (a first chunk ready at once is
    sent before the claim's request is built); a request cancelled in that turn (the client
    left) closes the model, starts no claim and leaves no task behind."""
    basin = MemoryBasin()
    chat = create_resumable_chat(basin=basin, respond_before_claim=True)
    model = Model()
    request = asyncio.create_task(
        chat.make_resumable(
            "chat-c1", lambda signal: model([], signal), message=user_message(), new_chat=True
        )
    )
    await asyncio.sleep(0)  # the request runs up to the turn it gives the source
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert model.closed.is_set()
    assert chat.running("chat-c1") is None
    assert (await basin.check_tail("chat-c1")).seq_num == 0  # no claim was appended
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    # the chat takes the turn again
    model.more.set()
    response = await chat.make_resumable(
        "chat-c1", lambda signal: model([], signal), message=user_message(), new_chat=True
    )
    assert response.status_code == 200
    body = b"".join([frame async for frame in response.body_iterator]).decode()
    assert body.endswith("data: [DONE]\n\n") and model.calls == 2
    await chat.aclose()
