"""Testing helpers shipped with resumable-chat, so applications can test offline.

- :mod:`resumable_chat.testing.s2_server`: an S2-REST-compatible server (a Starlette ASGI app
  backed by :class:`~resumable_chat.s2.memory.MemoryBasin`), runnable as
  ``python -m resumable_chat.testing.s2_server --host 127.0.0.1 --port N``.
- :mod:`resumable_chat.testing.fault_plan`: :class:`FaultPlan`, scripted per-test faults for
  that server (latency, 5xx/408/429, lost acks, cut or failing SSE read sessions, outages):
  ``create_app(faults=FaultPlan())``.
- :mod:`resumable_chat.testing.pytest_plugin`: pytest fixtures (``s2_server_url``,
  ``memory_basin``, ``http_basin``, ``basin``), registered as a ``pytest11`` entry point.

Nothing is imported here, so importing the package (as pytest does for the plugin) stays cheap.
"""
