"""The implementation of :mod:`resumable_chat.testing.s2_server` (import from there)."""
