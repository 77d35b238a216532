"""TanStack AI ``StreamChunk`` (AG-UI events): the dialect and the ``StreamProcessor`` fold
that makes ``MESSAGES_SNAPSHOT`` (``@tanstack/ai`` ``StreamProcessor``, as
``@tanstack/ai-client`` uses it)."""
