"""Files a user attached → OpenAI content parts (chat completions and Responses).

What the AI SDK's OpenAI provider sends for the same files is the reference
(``packages/openai/src/chat/convert-to-openai-chat-messages.ts``,
``packages/openai/src/responses/convert-to-openai-responses-input.ts``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resumable_chat.sources import to_openai_messages, to_responses_input
from resumable_chat.sources.attachments import attachment_of, parse_data_url

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
WAV = "data:audio/wav;base64,UklGRg=="
MP3 = "data:audio/mpeg;base64,SUQz"


def _file(media_type: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "file", "mediaType": media_type, "url": url, **extra}


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"id": "u", "role": "user", "parts": list(parts)}


def _content(*parts: dict[str, Any]) -> Any:
    (message,) = to_openai_messages([_user(*parts)])
    return message["content"]


def test_ai_sdk_files_become_chat_content_parts_in_order() -> None:
    assert _content(
        _file("image/png", PNG, filename="dot.png"),
        _file("application/pdf", PDF, filename="a.pdf"),
        _file("audio/wav", WAV),
        _file("audio/mpeg", MP3),
        _file("image/jpeg", "https://example.com/cat.jpg"),
        {"type": "text", "text": "what are these?"},
    ) == [
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "what are these?"},
    ]


def test_a_pdf_without_a_name_is_named_after_its_position() -> None:
    content = _content({"type": "text", "text": "read"}, _file("application/pdf", PDF))
    assert content[1] == {"type": "file", "file": {"filename": "part-1.pdf", "file_data": PDF}}


def test_files_chat_completions_cannot_take_are_left_out() -> None:
    unsupported = [
        _file("text/plain", "data:text/plain;base64,aGk="),
        _file("video/mp4", "data:video/mp4;base64,AAAA"),
        _file("application/pdf", "https://example.com/a.pdf"),  # by URL
        _file("audio/wav", "https://example.com/a.wav"),  # by URL
        _file("audio/ogg", "data:audio/ogg;base64,T2dn"),
        _file("application/pdf", "data:application/pdf,%25PDF"),  # not base64
    ]
    for part in unsupported:
        assert _content({"type": "text", "text": "hi"}, part) == "hi", part


def test_a_message_without_attachments_keeps_string_content() -> None:
    assert _content({"type": "text", "text": "a"}, {"type": "text", "text": "b"}) == "ab"
    assert _content() == ""


def test_hostile_urls_and_media_types_are_not_attachments() -> None:
    for part in [
        _file("image/png", "file:///etc/passwd"),
        _file("image/png", "javascript:alert(1)"),
        _file("image/png", "//example.com/a.png"),
        _file("image/png\r\nX: y", PNG),
        _file("image/png;base64,", PNG),
        _file("", PNG),
        {"type": "file", "mediaType": "image/png"},
        {"type": "file", "url": PNG},
        {"type": "image", "source": {"type": "url", "value": "ftp://example.com/a.png"}},
        {"type": "image", "source": {"type": "data", "value": "aGk="}},  # no mimeType
        {"type": "image", "source": {"type": "blob", "value": "x", "mimeType": "image/png"}},
        {"type": "image", "source": "https://example.com/a.png"},
    ]:
        assert attachment_of(part) is None, part
        assert _content({"type": "text", "text": "hi"}, part) == "hi"


def test_tanstack_media_parts_become_chat_content_parts() -> None:
    image = {"type": "image", "source": {"type": "data", "value": "iVBO", "mimeType": "image/png"}}
    linked = {
        "type": "image",
        "source": {"type": "url", "value": "https://example.com/cat.jpg"},
        "metadata": {"detail": "high"},
    }
    audio = {"type": "audio", "source": {"type": "data", "value": "SUQz", "mimeType": "audio/mp3"}}
    pdf = {
        "type": "document",
        "source": {"type": "data", "value": "JVBE", "mimeType": "application/pdf"},
    }
    video = {"type": "video", "source": {"type": "url", "value": "https://example.com/v.mp4"}}
    text = {"type": "text", "content": "look"}
    assert _content(text, image, linked, audio, pdf, video) == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
        },
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {
            "type": "file",
            "file": {"filename": "part-4.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
    ]


def test_attachments_of_other_roles_are_not_sent() -> None:
    messages = [
        {
            "id": "s",
            "role": "system",
            "parts": [{"type": "text", "text": "sys"}, _file("image/png", PNG)],
        },
        {
            "id": "a",
            "role": "assistant",
            "parts": [_file("image/png", PNG), {"type": "text", "text": "drawn"}],
        },
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "drawn"},
    ]


def test_responses_input_has_input_image_and_input_file_parts() -> None:
    message = _user(
        {"type": "text", "text": "compare"},
        _file("image/png", PNG),
        _file("application/pdf", PDF, filename="a.pdf"),
        _file("application/pdf", "https://example.com/b.pdf"),
        _file("audio/wav", WAV),  # Responses takes no audio here
        _file("application/pdf", "Data:application/pdf,%25PDF"),  # not base64
        {
            "type": "image",
            "source": {"type": "url", "value": "https://x/y.png"},
            "metadata": {"detail": "low"},
        },
    )
    assert to_responses_input([message]) == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "compare"},
                {"type": "input_image", "image_url": PNG, "detail": "auto"},
                {"type": "input_file", "filename": "a.pdf", "file_data": PDF},
                {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            ],
        }
    ]


def test_parse_data_url() -> None:
    assert parse_data_url(PNG) == ("image/png", "iVBORw0KGgo=")
    assert parse_data_url("DATA:Image/PNG;name=a.png;base64,AAAA") == ("image/png", "AAAA")
    assert parse_data_url("data:;base64,AAAA") == ("", "AAAA")
    assert parse_data_url("data:text/plain,hello") is None
    assert parse_data_url("data:image/png;base64") is None
    assert parse_data_url("https://example.com/a.png") is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["file", "image", "audio", "video", "document", "text"])},
    optional={
        "url": _json | st.sampled_from([PNG, PDF, "https://x/y"]),
        "mediaType": _json | st.sampled_from(["image/png", "application/pdf", "audio/wav"]),
        "source": _json
        | st.fixed_dictionaries(
            {"type": st.sampled_from(["data", "url"]), "value": _json | st.just("aGk=")},
            optional={"mimeType": _json | st.just("image/png")},
        ),
        "text": _json,
        "content": _json,
        "filename": _json,
        "metadata": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_part | st.dictionaries(st.text(max_size=8), _json, max_size=3), max_size=6))
def test_odd_parts_never_raise(parts: list[dict[str, Any]]) -> None:
    for role in ("user", "system", "assistant"):
        message = {"id": "m", "role": role, "parts": parts}
        to_openai_messages([message])
        to_responses_input([message])
