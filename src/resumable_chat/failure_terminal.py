"""Closing a log honestly after its writer gave up: the error terminal, written when S2 is back.

When appends fail past the retry budget (:class:`~resumable_chat.s2.errors.S2UnavailableError`
from the :class:`~resumable_chat.writer.LogWriter`), the live answer still completes for its
client, but the log holds only the records acknowledged before the failure and no terminal
fence, so readers would take the generation for one still running. :func:`append_failure_terminal`
keeps trying, with backoff, to append the protocol's error chunk(s) and an ``error-`` fence
under the generation's fencing token, so replays end with an error and status checks say
"failed", never "done".

The append is conditioned on the fencing token only (no ``match_seq_num``): the token already
guarantees nobody else wrote since, and a retry after an attempt that landed without its ack
fails with a token mismatch naming our own terminal fence, which counts as success. A ``stop-``
fence appended meanwhile by another instance is adopted; any other token means the stream was
taken over (e.g. crash takeover after the lease), which closed the generation already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .s2.basin import Basin
from .s2.errors import FencingTokenMismatchError, S2AuthError, S2Error, S2InvalidError
from .s2.records import AppendInput, AppendRecord, is_fence

__all__ = ["FAILURE_TERMINAL_BUDGET_S", "append_failure_terminal"]

logger = logging.getLogger("resumable_chat.writer")

#: Seconds :func:`append_failure_terminal` keeps trying by default.
FAILURE_TERMINAL_BUDGET_S = 60.0


async def append_failure_terminal(
    basin: Basin,
    stream: str,
    fencing_token: str,
    records: Sequence[AppendRecord],
    *,
    budget_s: float = FAILURE_TERMINAL_BUDGET_S,
    base_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
) -> bool:
    """Append ``records`` (ending with an ``error-`` fence) to ``stream`` under ``fencing_token``.

    Args:
        basin / stream: the generation's log.
        fencing_token: the generation's token (the writer's current one).
        records: the error chunk record(s) and, last, the ``error-`` fence record.
        budget_s: seconds to keep retrying S2 failures (exponential backoff from
            ``base_delay_s`` to ``max_delay_s`` seconds between attempts).

    Returns:
        True when the terminal is in the log (appended now, or by an earlier attempt whose
        ack was lost); False when the stream was taken over by another writer, S2 refused
        the request (auth, invalid), or ``budget_s`` ran out.

    Raises:
        ValueError: ``records`` is empty or does not end with a fence.
    """
    if not records or not is_fence(records[-1]):
        raise ValueError("records must end with the error- fence")
    terminal = records[-1].body.decode()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    delay = base_delay_s
    token = fencing_token
    while True:
        try:
            await basin.append(stream, AppendInput(list(records), fencing_token=token))
            return True
        except FencingTokenMismatchError as exc:
            expected = exc.expected_fencing_token
            if expected == terminal:
                return True  # an earlier attempt landed; its ack was lost
            if expected.startswith("stop-") and expected != token:
                token = expected  # a stop request arrived meanwhile: it changes nothing here
                continue
            logger.info("stream %s was taken over before its error terminal", stream)
            return False
        except (S2AuthError, S2InvalidError) as exc:
            logger.error("cannot write the error terminal of %s: %s", stream, exc)
            return False
        except S2Error as exc:
            if loop.time() + delay > deadline:
                logger.error("gave up writing the error terminal of %s: %s", stream, exc)
                return False
            logger.debug("error terminal of %s: retrying in %.1f s (%s)", stream, delay, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)
