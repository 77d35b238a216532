"""Choosing the log from the environment: S2 over HTTP when configured, else the embedded log.

Variables (the names the S2 SDKs and CLI use, https://s2.dev/docs/api):

- ``S2_ACCESS_TOKEN``: the access token (s2-lite and the bundled test server accept any value);
- ``S2_BASIN``: the basin holding one stream per chat (8 to 48 of ``a-z 0-9 -``, checked
  here: :mod:`resumable_chat.s2.names`);
- ``S2_ACCOUNT_ENDPOINT`` (optional, default ``https://a.s2.dev``);
- ``S2_BASIN_ENDPOINT`` (optional, default ``https://{basin}.b.s2.dev``; without ``{basin}``
  the ``S2-Basin`` header is sent, as s2-lite needs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.errors import S2ConfigError
from resumable_chat.s2.http import HttpBasin
from resumable_chat.s2.memory import MemoryBasin
from resumable_chat.s2.names import check_basin_name

__all__ = ["basin_from_env"]

logger = logging.getLogger(__name__)


def basin_from_env(environ: Mapping[str, str] = os.environ) -> Basin:
    """The basin the environment asks for (the README's "Running on S2").

    ``environ``: the variables to read (default ``os.environ``); empty values count as unset.
    Returns an :class:`~resumable_chat.s2.http.HttpBasin` when ``S2_ACCESS_TOKEN`` and
    ``S2_BASIN`` are both set (endpoints from ``S2_ACCOUNT_ENDPOINT`` / ``S2_BASIN_ENDPOINT``),
    else a :class:`~resumable_chat.s2.memory.MemoryBasin`, logging one WARNING line that
    storage is the embedded in-process log (WARNING, so that it shows under any ASGI server,
    even when the application configured no logging: Python's last-resort handler prints
    warnings to stderr).

    Raises :class:`~resumable_chat.s2.errors.S2ConfigError` naming the missing variable when
    only one of the two is set, and :class:`~resumable_chat.s2.errors.S2NameError` (a
    subclass) when ``S2_BASIN`` is not a valid S2 basin name. Nothing is sent to S2 here: the
    start-up check (:func:`~resumable_chat.s2.check.check_basin`) does that.
    """
    token = environ.get("S2_ACCESS_TOKEN") or None
    basin = environ.get("S2_BASIN") or None
    if token is not None and basin is not None:
        check_basin_name(basin, what="S2_BASIN")
        return HttpBasin(
            basin,
            access_token=token,
            account_endpoint=environ.get("S2_ACCOUNT_ENDPOINT") or None,
            basin_endpoint=environ.get("S2_BASIN_ENDPOINT") or None,
        )
    if basin is not None:
        raise S2ConfigError(
            "S2_BASIN is set but S2_ACCESS_TOKEN is missing: set S2_ACCESS_TOKEN to an S2 access "
            "token (any value for s2-lite), or unset S2_BASIN to use the embedded log"
        )
    if token is not None:
        raise S2ConfigError(
            "S2_ACCESS_TOKEN is set but S2_BASIN is missing: set S2_BASIN to the basin that "
            "holds the chat streams, or unset S2_ACCESS_TOKEN to use the embedded log"
        )
    logger.warning(
        "S2 is not configured (S2_ACCESS_TOKEN and S2_BASIN are unset): storage is the "
        "embedded in-process log, which lives only as long as this process"
    )
    return MemoryBasin()
