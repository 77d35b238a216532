"""Testing helpers shipped with resumable-chat, so applications can test offline.

- :mod:`resumable_chat.testing.s2_server`: an S2-compatible server (a Starlette ASGI app
  backed by :class:`~resumable_chat.s2.memory.MemoryBasin`; JSON and protobuf bodies, SSE and
  ``s2s/proto`` sessions), runnable as ``python -m resumable_chat.testing.s2_server --host
  127.0.0.1 --port N`` (HTTP/1.1 and cleartext HTTP/2 under hypercorn).
- :mod:`resumable_chat.testing.s2s_framing`: the ``s2s/proto`` session framing it uses.
- :mod:`resumable_chat.testing.fault_plan`: :class:`FaultPlan`, scripted per-test faults for
  that server (latency, 5xx/408/429, lost acks, cut or failing SSE read sessions, outages):
  ``create_app(faults=FaultPlan())``.
- :mod:`resumable_chat.testing.pytest_plugin`: pytest fixtures (``s2_server_url``,
  ``memory_basin``, ``http_basin``, ``basin``), registered as a ``pytest11`` entry point.

Everything here needs the ``testing`` extra (``pip install 'resumable-chat[testing]'``).
Nothing is imported here, so importing the package (as pytest does for the plugin) stays cheap.
"""
