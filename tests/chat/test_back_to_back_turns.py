"""A turn sent the moment the previous answer's stream ends is accepted, not refused with 409.

The AI SDK client sends a tool-result continuation (``sendAutomaticallyWhen``) as soon as it
reads ``[DONE]``; the answer's end fence may still be on its way to S2 then. The chat waits
for it instead of answering ``409 Stream already in use``.
"""

from __future__ import annotations

from chat_helpers import parse_sse, text_answer, user_message

from resumable_chat.log import read_range
from resumable_chat.s2 import is_terminal_fence


async def test_turn_right_after_done_is_accepted(make_chat_app) -> None:  # type: ignore[no-untyped-def]
    async with make_chat_app() as app:
        for turn in range(15):
            app.model.chunks = text_answer(["one ", "two"], message_id=f"m{turn}")
            response = await app.post("c1", [user_message(f"turn {turn}", f"u{turn}")])
            assert response.status_code == 200, (turn, response.text)
            assert parse_sse(response.text)[-1] == (None, "[DONE]")
        records = await read_range(app.basin, "chat-c1", 0)
        assert sum(1 for r in records if is_terminal_fence(r)) == 15
