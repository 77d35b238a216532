"""UIMessage history → OpenAI chat messages."""

from __future__ import annotations

from resumable_chat.sources import to_openai_messages


def _call(call_id: str, name: str, arguments: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_text_tool_calls_and_results() -> None:
    messages = [
        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "be brief"}]},
        {"id": "u", "role": "user", "parts": [{"type": "text", "text": "where am I?"}]},
        {
            "id": "a",
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": "hmm"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool-getLocation",
                    "toolCallId": "tc1",
                    "state": "output-available",
                    "input": {"precise": True},
                    "output": {"lat": 1},
                },
                {
                    "type": "dynamic-tool",
                    "toolName": "lookup",
                    "toolCallId": "tc2",
                    "state": "output-error",
                    "input": {},
                    "errorText": "boom",
                },
                {"type": "tool-pending", "toolCallId": "tc3", "state": "input-available"},
            ],
        },
        {"id": "x", "role": "tool", "parts": []},
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "where am I?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "tc1",
                    "type": "function",
                    "function": {"name": "getLocation", "arguments": '{"precise": true}'},
                },
                {
                    "id": "tc2",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                },
                {
                    "id": "tc3",
                    "type": "function",
                    "function": {"name": "pending", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "tc1", "content": '{"lat": 1}'},
        {"role": "tool", "tool_call_id": "tc2", "content": '{"error": "boom"}'},
    ]


def test_assistant_without_text_has_null_content() -> None:
    out = to_openai_messages([{"id": "a", "role": "assistant", "parts": []}])
    assert out == [{"role": "assistant", "content": None}]


def test_tanstack_messages() -> None:
    messages = [
        {"id": "u", "role": "user", "parts": [{"type": "text", "content": "hi"}]},
        {
            "id": "a",
            "role": "assistant",
            "parts": [
                {"type": "thinking", "content": "hmm"},
                {"type": "text", "content": "Checking."},
                {"type": "tool-call", "id": "c1", "name": "f", "arguments": '{"x":1}'},
                {"type": "tool-result", "toolCallId": "c1", "content": '{"ok":true}'},
            ],
        },
    ]
    assert to_openai_messages(messages) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [_call("c1", "f", '{"x":1}')]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"ok":true}'},
    ]
