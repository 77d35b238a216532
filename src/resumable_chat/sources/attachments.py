"""Files a user attached to a message → the content parts of OpenAI's APIs.

A user message's attachments arrive as parts of its ``UIMessage``:

- AI SDK: a ``FileUIPart``, ``{"type": "file", "mediaType", "url", "filename"?}``, where
  ``url`` is a data URL (``useChat``'s ``sendMessage({files})`` reads a ``FileList`` into
  data URLs) or any URL (``packages/ai/src/ui/ui-messages.ts``);
- TanStack AI: ``{"type": "image" | "audio" | "video" | "document", "source", "metadata"?}``
  with ``source`` either ``{"type": "data", "value": <base64>, "mimeType"}`` or
  ``{"type": "url", "value", "mimeType"?}`` (``ContentPartSource`` in
  ``packages/typescript/ai/src/types.ts``).

:func:`attachment_of` reads either into one :class:`Attachment`; :func:`chat_content_part`
gives its chat-completions content part, following what the AI SDK's OpenAI provider sends
(``packages/openai/src/chat/convert-to-openai-chat-messages.ts``) and the API reference
(https://platform.openai.com/docs/api-reference/chat/create, user message ``content``):

- ``image/*``, as a data URL or any URL: ``{"type": "image_url", "image_url": {"url"}}``;
- ``audio/wav`` or ``audio/mpeg`` as a data URL: ``{"type": "input_audio", "input_audio":
  {"data", "format"}}``;
- ``application/pdf`` as a data URL: ``{"type": "file", "file": {"filename", "file_data"}}``.

Anything else (a video, a PDF or audio by URL, a text file, a malformed part) has no
chat-completions form and is left out: the model gets the rest of the message.
:func:`responses_content_part` does the same for the Responses API
(https://platform.openai.com/docs/api-reference/responses/create, ``input_image`` and
``input_file``; ``packages/openai/src/responses/convert-to-openai-responses-input.ts``):
images, and PDFs as data URLs or by URL; audio is left out there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Attachment",
    "attachment_of",
    "chat_content_part",
    "parse_data_url",
    "responses_content_part",
]

#: A media type as RFC 6838 spells one (``type/subtype``, ``*`` for any subtype), no parameters.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")
#: The image detail levels OpenAI accepts (``image_url.detail``).
_DETAILS = frozenset({"auto", "low", "high"})
#: Audio media types → ``input_audio.format`` (the two formats chat completions takes).
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}
#: TanStack part types, and the media type a part of that type is taken to have when its
#: source names none (a data source must name one; an image URL is any image).
_TANSTACK_KINDS = {"image": "image/*", "audio": "", "video": "", "document": ""}


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a user message.

    Attributes:
        media_type: its IANA media type, lower case (``"image/png"``; ``"image/*"`` for an
            image URL whose type nobody named).
        url: a ``data:`` URL holding the file, or the URL it is at.
        filename: the name the user's file had, if the client sent one.
        detail: an image's OpenAI detail level (``"auto"``, ``"low"`` or ``"high"``), when
            the part asked for one (TanStack ``metadata.detail``).
    """

    media_type: str
    url: str
    filename: str | None = None
    detail: str | None = None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """The media type and base64 payload of a base64 ``data:`` URL (RFC 2397).

    Args:
        url: any string.

    Returns:
        ``(media_type, payload)``, the media type lower case without parameters (``""``
        when the URL names none); ``None`` when ``url`` is not a ``data:`` URL or its data is
        not base64 (percent-encoded data has no base64 payload to hand on). Never raises.
    """
    if not url[:5].lower() == "data:":
        return None
    header, comma, payload = url[5:].partition(",")
    if not comma:
        return None
    fields = header.split(";")
    if fields[-1].strip().lower() != "base64":
        return None
    return fields[0].strip().lower(), payload


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _media_type(value: object) -> str | None:
    """``value`` as a lower-case media type, or ``None`` when it is not one."""
    if not isinstance(value, str):
        return None
    lowered = value.strip().lower()
    return lowered if _MEDIA_TYPE.fullmatch(lowered) else None


def _fetchable(url: str) -> bool:
    """Whether ``url`` is a ``data:``, ``https:`` or ``http:`` URL (case-insensitive)."""
    return url[:5].lower() == "data:" or url.split(":", 1)[0].lower() in ("https", "http")


def attachment_of(part: Mapping[str, Any]) -> Attachment | None:
    """The attachment an AI SDK ``file`` part or a TanStack media part carries.

    Only ``data:``, ``https:`` and ``http:`` URLs count: a part naming another scheme
    (``file:``, ``javascript:``...) comes from a hostile or broken client and is not handed
    to a model library, which might try to open it.

    Args:
        part: one element of a ``UIMessage``'s ``parts``.

    Returns:
        An :class:`Attachment`, or ``None`` for a part that is not an attachment or lacks
        what one needs (a URL of those schemes, a media type, base64 data). Never raises.
    """
    kind = part.get("type")
    if kind == "file":  # AI SDK FileUIPart
        url, media_type = _str(part.get("url")), _media_type(part.get("mediaType"))
        if url is None or media_type is None or not _fetchable(url):
            return None
        return Attachment(media_type, url, _str(part.get("filename")))
    if not isinstance(kind, str) or kind not in _TANSTACK_KINDS:
        return None
    source = part.get("source")
    if not isinstance(source, Mapping):
        return None
    value, media_type = _str(source.get("value")), _media_type(source.get("mimeType"))
    metadata = part.get("metadata")
    detail = metadata.get("detail") if isinstance(metadata, Mapping) else None
    detail = detail if isinstance(detail, str) and detail in _DETAILS else None
    if value is None:
        return None
    if source.get("type") == "data":
        if media_type is None:
            return None
        url = f"data:{media_type};base64,{value}"
    elif source.get("type") == "url":
        url = value
        if not _fetchable(url):
            return None
        if media_type is None:
            named = parse_data_url(value)
            media_type = _media_type(named[0] if named else "") or _TANSTACK_KINDS[kind]
        if not media_type:
            return None
    else:
        return None
    return Attachment(media_type, url, None, detail)


def chat_content_part(attachment: Attachment, index: int) -> dict[str, Any] | None:
    """The chat-completions content part for ``attachment`` (the list in the module docstring).

    Args:
        attachment: what the user attached.
        index: the part's position in its message, for a PDF's default file name
            (``part-<index>.pdf``, as the AI SDK's OpenAI provider names it).

    Returns:
        A new content-part dict, or ``None`` when chat completions cannot take the
        attachment (its media type, or a PDF or audio file given by URL). Never raises.
    """
    media_type, url = attachment.media_type, attachment.url
    if media_type.startswith("image/"):
        image: dict[str, Any] = {"url": url}
        if attachment.detail is not None:
            image["detail"] = attachment.detail
        return {"type": "image_url", "image_url": image}
    data = parse_data_url(url)
    if data is None:
        return None
    audio_format = _AUDIO_FORMATS.get(media_type)
    if audio_format is not None:
        return {"type": "input_audio", "input_audio": {"data": data[1], "format": audio_format}}
    if media_type == "application/pdf":
        filename = attachment.filename or f"part-{index}.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": url}}
    return None


def responses_content_part(attachment: Attachment, index: int) -> dict[str, Any] | None:
    """The Responses API content part for ``attachment``.

    Args:
        attachment: what the user attached.
        index: the part's position in its message, for a PDF's default file name.

    Returns:
        ``{"type": "input_image", "image_url", "detail"}`` for an image (``detail``
        ``"auto"`` unless the part named one), ``{"type": "input_file", "filename",
        "file_data"}`` for a PDF data URL, ``{"type": "input_file", "file_url"}`` for a PDF
        by URL; ``None`` for anything else. Never raises.
    """
    media_type, url = attachment.media_type, attachment.url
    if media_type.startswith("image/"):
        return {"type": "input_image", "image_url": url, "detail": attachment.detail or "auto"}
    if media_type != "application/pdf":
        return None
    if parse_data_url(url) is None:
        if url[:5].lower() == "data:":  # not base64
            return None
        return {"type": "input_file", "file_url": url}
    filename = attachment.filename or f"part-{index}.pdf"
    return {"type": "input_file", "filename": filename, "file_data": url}
