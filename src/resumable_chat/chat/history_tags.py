"""Entity tags of a chat's history, for conditional ``GET .../messages`` requests.

A chat's log only grows (S2 streams are append-only; a trim is itself a record), so the
position of its tail names the history folded from it: the next seq_num and the timestamp
(ms) of the last record, which also tells apart a stream deleted and created again. A page
that polls the history sends ``If-None-Match`` (browsers do it on their own for a response
with an ``ETag`` and ``Cache-Control: no-cache``) and gets 304 with no body while nothing was
appended: one S2 check-tail instead of a read of the whole log.

The comparison is the weak one RFC 9110 §13.1.2 prescribes for ``If-None-Match``
(https://www.rfc-editor.org/rfc/rfc9110#section-13.1.2).
"""

from __future__ import annotations

from resumable_chat.s2.records import StreamPosition

#: The tag of a stream with no records (missing, or never written).
EMPTY_HISTORY_TAG = 'W/"0-0"'


def history_tag(tail: StreamPosition) -> str:
    """The weak entity tag of the history at ``tail``.

    Args:
        tail: the stream's tail (next seq_num, timestamp of the last record in ms), as S2's
            check-tail gives it or as the last record read implies it.

    Returns:
        ``W/"<seq_num>-<timestamp>"``, e.g. ``W/"42-1764979200000"``.
    """
    return f'W/"{tail.seq_num}-{tail.timestamp}"'


def tag_matches(if_none_match: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` header value names ``tag`` (weak comparison).

    Args:
        if_none_match: the header's value: ``*`` or a comma-separated list of entity tags,
            each ``"opaque"`` or ``W/"opaque"``. Malformed members never match.
        tag: the current tag (:func:`history_tag`).

    Returns:
        True for ``*`` or when a listed tag has the same opaque part as ``tag``.
    """
    opaque = _opaque(tag)
    for member in if_none_match.split(","):
        member = member.strip()
        if member == "*" or (opaque is not None and _opaque(member) == opaque):
            return True
    return False


def _opaque(tag: str) -> str | None:
    """The quoted part of an entity tag (weak prefix dropped), or ``None`` if malformed."""
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"' or '"' in tag[1:-1]:
        return None
    return tag
