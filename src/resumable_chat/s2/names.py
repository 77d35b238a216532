"""S2's naming rules, checked when a name is configured rather than at the first request.

A basin name S2 would refuse (``S2_BASIN=chats``) otherwise surfaces only when a chat route
runs, as a failed request; checked here, it stops the app at start-up with
:class:`~resumable_chat.s2.errors.S2NameError` naming the rule.

Rules (the S2 Rust SDK's ``BasinName`` and ``StreamName`` types on docs.rs, and S2's OpenAPI
``BasinNameStr`` / ``StreamNameStr`` schemas):

- a basin name is 8 to 48 characters of lowercase letters, digits and hyphens, and neither
  starts nor ends with a hyphen;
- a stream name is 1 to 512 bytes of UTF-8 (any characters, ``/`` included).
"""

from __future__ import annotations

import re
from typing import Final

from resumable_chat.s2.errors import S2NameError

__all__ = [
    "BASIN_NAME_RULE",
    "MAX_STREAM_NAME_BYTES",
    "STREAM_NAME_RULE",
    "check_basin_name",
    "check_stream_name",
]

#: The basin naming rule, as error messages state it.
BASIN_NAME_RULE: Final = (
    "S2 basin names are 8 to 48 characters of lowercase letters (a-z), digits and hyphens, "
    "and do not start or end with a hyphen"
)
#: The longest S2 stream name, in UTF-8 bytes.
MAX_STREAM_NAME_BYTES: Final = 512
#: The stream naming rule, as error messages state it.
STREAM_NAME_RULE: Final = f"S2 stream names are 1 to {MAX_STREAM_NAME_BYTES} bytes of UTF-8"

_BASIN_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{6,46}[a-z0-9]")


def check_basin_name(name: str, *, what: str = "basin name") -> str:
    """Return ``name`` if it is a valid S2 basin name (module docstring), else raise.

    Args:
        name: the basin name.
        what: how the error message calls the value (e.g. ``"S2_BASIN"`` when it came from
            the environment).

    Raises:
        S2NameError: ``name`` breaks the rule; the message quotes it and states the rule.
    """
    if not isinstance(name, str) or _BASIN_NAME.fullmatch(name) is None:
        raise S2NameError(f"{what} {name!r} is not a valid basin name: {BASIN_NAME_RULE}", name)
    return name


def check_stream_name(name: str, *, what: str = "stream name") -> str:
    """Return ``name`` if it is a valid S2 stream name (1 to 512 UTF-8 bytes), else raise.

    Args:
        name: the stream name (or a prefix of stream names, which obeys the same bound).
        what: how the error message calls the value.

    Raises:
        S2NameError: ``name`` is empty, longer than 512 bytes, or not a string.
    """
    try:
        size = len(name.encode()) if isinstance(name, str) else -1
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8 at all
        size = -1
    if not 1 <= size <= MAX_STREAM_NAME_BYTES:
        raise S2NameError(
            f"{what} {name!r} is not a valid stream name ({size} bytes): {STREAM_NAME_RULE}", name
        )
    return name
