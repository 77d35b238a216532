"""An answer's state is freed when the answer ends, by reference counting: no object of the
package is left in a reference cycle for the garbage collector (which frees a long-lived
one only at a full collection, pausing every request for as long as it visits the process's
objects; see ``resumable_chat.tasks``).

Each case runs one answer the way users end them (to its end, followed on the same instance,
a follower leaving early, stopped, failing, its client leaving) on a real uvicorn, then
collects with ``gc.DEBUG_SAVEALL``, which keeps what a collection found unreachable."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from chat_helpers import tanstack_run, tanstack_user, text_answer, user_message

from helpers import package_garbage
from resumable_chat.tasks import forget_cancellation

WORDS = [f"w{i} " for i in range(8)]


async def _answer_ended(app: Any, chat_id: str, prefix: str = "chat") -> None:
    generation = app.chat.engine.generation(f"{prefix}-{chat_id}")
    if generation is not None:
        await asyncio.wait_for(asyncio.wait([generation.task]), 10)


async def _read_all(app: Any, chat_id: str) -> str:
    body = {"id": chat_id, "messages": [user_message("hi")]}
    async with app.client.stream("POST", "/api/chat", json=body) as live:
        assert live.status_code == 200
        return "".join([text async for text in live.aiter_text()])


async def finished(app: Any, chat_id: str) -> None:
    assert "w7" in await _read_all(app, chat_id)


async def followed(app: Any, chat_id: str, *, leaves: bool = False) -> None:
    app.model.hold_at = 4
    live = asyncio.create_task(_read_all(app, chat_id))
    await app.model.reached_hold.wait()
    async with app.client.stream("GET", f"/api/chat/{chat_id}/stream") as replay:
        assert replay.status_code == 200
        texts = replay.aiter_text()
        async for text in texts:
            if "w0" in text:
                break
        if not leaves:
            app.model.gate.set()
            assert "w7" in "".join([text async for text in texts])
    app.model.gate.set()
    assert "w7" in await live


async def follower_leaves(app: Any, chat_id: str) -> None:
    await followed(app, chat_id, leaves=True)


async def stopped(app: Any, chat_id: str) -> None:
    app.model.hold_at = 4
    live = asyncio.create_task(_read_all(app, chat_id))
    await app.model.reached_hold.wait()
    assert (await app.client.delete(f"/api/chat/{chat_id}/stream")).status_code == 202
    assert '"abort"' in await live


async def failing(app: Any, chat_id: str) -> None:
    app.model.raise_at = 4
    assert '"error"' in await _read_all(app, chat_id)


async def client_leaves(app: Any, chat_id: str) -> None:
    app.model.hold_at = 4
    body = {"id": chat_id, "messages": [user_message("hi")]}
    async with app.client.stream("POST", "/api/chat", json=body) as live:
        assert live.status_code == 200
        await app.model.reached_hold.wait()
    app.model.gate.set()  # the answer goes on without its client, and ends


CASES: dict[str, Callable[[Any, str], Awaitable[None]]] = {
    "finished": finished,
    "followed": followed,
    "follower_leaves": follower_leaves,
    "stopped": stopped,
    "failing": failing,
    "client_leaves": client_leaves,
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_an_ended_answer_leaves_no_cycle_of_the_package(
    make_chat_app: Any, case: str
) -> None:
    async with make_chat_app() as app:
        app.model.chunks = text_answer(WORDS)
        await finished(app, "warm")  # first-use state (caches, the basin's client) is not ours
        await _answer_ended(app, "warm")
        app.model.chunks = text_answer(WORDS)
        with package_garbage() as ours:
            await CASES[case](app, "c1")
            await _answer_ended(app, "c1")
    assert ours == []


async def test_a_cancelled_task_held_by_its_owner_is_freed_with_it() -> None:
    class Owner:
        def __init__(self, forget: bool) -> None:
            self.task = asyncio.get_running_loop().create_task(self.run())
            if forget:
                self.task.add_done_callback(forget_cancellation)

        async def run(self) -> None:
            await asyncio.Event().wait()

    freed: dict[bool, bool] = {}
    gc.disable()  # only reference counting frees anything here
    try:
        for forget in (False, True):
            owner = Owner(forget)
            await asyncio.sleep(0)  # the task runs up to its wait
            owner.task.cancel()
            await asyncio.wait([owner.task])
            await asyncio.sleep(0)  # its done callbacks run
            gone = weakref.ref(owner)
            del owner
            freed[forget] = gone() is None
    finally:
        gc.enable()
    assert freed == {False: False, True: True}  # without it: the cycle through the traceback


@pytest.mark.parametrize("closed_mid_run", [False, True])
async def test_a_tanstack_session_run_and_its_replay_leave_no_cycle(
    make_tanstack_app: Any, closed_mid_run: bool
) -> None:
    async with make_tanstack_app() as app:
        app.model.chunks = tanstack_run(["one"], run_id="r0")
        await app.post("warm", [tanstack_user("hi")])
        await _answer_ended(app, "warm", prefix="tanstack")
        app.model.chunks = tanstack_run(WORDS, run_id="r1")
        app.model.hold_at = 4 if closed_mid_run else None
        with package_garbage() as ours:
            assert (await app.post("c1", [tanstack_user("hi")])).status_code == 202
            if closed_mid_run:  # snapshot, then the run's first chunks live; then it leaves
                await app.model.reached_hold.wait()
                await app.replay_frames("c1", 3)
                app.model.gate.set()
            await _answer_ended(app, "c1", prefix="tanstack")
            await app.replay_frames("c1", 1)  # the snapshot of the whole chat
    assert ours == []
