"""Client protocols on the chat core: the AI SDK, TanStack AI and AG-UI.

Each package holds one protocol's chunk rules, its dialect (headers, terminals, storage form)
and its history fold. Importing this package registers the ``"ai-sdk"``, ``"ai-sdk-v7"`` and
``"tanstack"`` dialects with :func:`resumable_chat.chat.register_dialect`.
"""

from resumable_chat.chat.dialect import register_dialect
from resumable_chat.protocols.ai_sdk.dialect import AiSdkDialect
from resumable_chat.protocols.tanstack.dialect import TanStackDialect

register_dialect("ai-sdk", AiSdkDialect)
register_dialect("ai-sdk-v7", lambda: AiSdkDialect(version=7))
register_dialect("tanstack", TanStackDialect)

__all__ = ["AiSdkDialect", "TanStackDialect"]
