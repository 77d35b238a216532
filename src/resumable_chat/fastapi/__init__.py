"""Drop-in FastAPI routes that speak the clients' HTTP conventions.

:func:`tanstack_router` serves the TanStack session contract (``POST``/``DELETE {prefix}``,
``GET {prefix}/replay``).

:func:`ai_sdk_router` serves the AI SDK contract (``DefaultChatTransport``
defaults): ``POST {prefix}``, ``GET {prefix}/{id}/stream``, ``DELETE {prefix}/{id}/stream``
and ``GET {prefix}/{id}/messages``. Requests are validated with pydantic models; a bad request
gets a 4xx with a readable JSON body and writes nothing to the log.

Access: chat ids are user input. Every router takes ``authorize(request, chat_id)``
(:data:`Authorize`), called after the request is validated and before anything is read,
written or stopped; it raises ``fastapi.HTTPException`` (401/403) to refuse.

Storage: every router checks S2 at start-up (``check_storage=True``: its lifespan awaits
``chat.check()``, one cheap request) and answers S2 failures the same way
(:mod:`resumable_chat.fastapi.requests`): 503 with ``Retry-After`` while S2 is unavailable,
500 without it when the configuration is wrong (refused token, missing basin).
"""

from resumable_chat.fastapi.agui import AgUiRun, agui_router
from resumable_chat.fastapi.ai_sdk import (
    AiSdkChatRequest,
    AiSdkSource,
    UIMessageModel,
    ai_sdk_router,
    with_history,
)
from resumable_chat.fastapi.requests import (
    CHAT_ID_PATTERN,
    DEFAULT_MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    STORAGE_UNAVAILABLE_TEXT,
    Authorize,
    authorize_chat,
)
from resumable_chat.fastapi.streams import (
    STREAM_ID_PATTERN,
    resumable_stream_router,
    stream_response,
)
from resumable_chat.fastapi.tanstack import (
    TanStackChatRequest,
    TanStackSource,
    TanStackStopRequest,
    tanstack_router,
)

__all__ = [
    "CHAT_ID_PATTERN",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "STORAGE_UNAVAILABLE_TEXT",
    "STREAM_ID_PATTERN",
    "AgUiRun",
    "AiSdkChatRequest",
    "AiSdkSource",
    "Authorize",
    "TanStackChatRequest",
    "TanStackSource",
    "TanStackStopRequest",
    "UIMessageModel",
    "agui_router",
    "ai_sdk_router",
    "authorize_chat",
    "resumable_stream_router",
    "stream_response",
    "tanstack_router",
    "with_history",
]
