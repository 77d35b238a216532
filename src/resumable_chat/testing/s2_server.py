"""An S2-compatible server for tests: a Starlette ASGI app backed by ``MemoryBasin`` s.

It speaks S2's REST API v1 as published in S2's OpenAPI document (``s2/v1/openapi.json`` of the
public repository ``s2-streamstore/s2-specs``), with its protobuf bodies (``s2/v1/s2.proto``)
and its ``s2s/proto`` append and read sessions (``s2/v1/s2s.md``), so
:class:`~resumable_chat.s2.http.HttpBasin` and the official SDKs (``@s2-dev/streamstore``,
``s2-sdk``) can be tested offline: point ``S2_ACCOUNT_ENDPOINT`` / ``S2_BASIN_ENDPOINT`` at it
(any ``S2_ACCESS_TOKEN`` works unless ``access_token`` is set). Where the document is silent,
behaviour follows s2-lite (``s2-streamstore/s2``, ``lite/``), whose source paths are cited below.

Implemented (all paths under ``/v1``; :data:`IMPLEMENTED_OPERATIONS`):

- basins: ``list_basins``, ``create_basin``, ``get_basin_config``, ``ensure_basin``,
  ``reconfigure_basin``, ``delete_basin``. Unlike S2, a basin named by a stream request is
  created on first use (``auto_create_basins``), and basins get ``create_stream_on_append`` /
  ``create_stream_on_read`` on unless told otherwise.
- streams: ``list_streams``, ``create_stream``, ``get_stream_config``, ``ensure_stream``,
  ``reconfigure_stream``, ``delete_stream``. Stream configuration is validated, stored and
  returned, but not enforced (no retention, timestamping modes or delete-on-empty).
- records: ``append`` (JSON, or ``application/protobuf`` / ``application/x-protobuf``
  ``AppendInput``), ``read`` (JSON or protobuf ``ReadBatch`` by ``Accept``, an SSE session with
  ``Accept: text/event-stream``, an ``s2s/proto`` session with ``Content-Type: s2s/proto``),
  ``check_tail``; append sessions are ``POST .../records`` with ``Content-Type: s2s/proto``.
- ``s2-format``: ``raw`` (default, alias ``json``; output is lossy UTF-8, like Rust's
  ``String::from_utf8_lossy`` in ``api/src/data.rs``) and ``base64`` (alias ``json-binsafe``).
- the basin comes from the ``S2-Basin`` header (s2-lite requires it: 400 ``bad_header``) or
  from the ``Host`` subdomain ``{basin}.b.<anything>`` (as on s2.dev).
- error bodies: ``{"code","message"}``; 412 ``{"fencing_token_mismatch": T}`` /
  ``{"seq_num_mismatch": N}``; 416 ``{"tail": StreamPosition}``; 404 ``basin_not_found`` /
  ``stream_not_found``; 400 ``bad_json`` (including a non-JSON ``Content-Type`` on append),
  ``bad_proto``, ``bad_frame``, ``bad_header``, ``bad_query``; 422 ``invalid``; 409
  ``resource_already_exists``.
- request bodies with ``Content-Encoding: gzip`` or ``zstd`` (as ``s2-sdk`` sends them when
  compression is on); session frames compressed either way, answered in the compression that
  ``Accept-Encoding`` offers.

Not implemented: access tokens and metrics (501 ``not_implemented``, as s2-lite answers),
locations, encryption (``s2-encryption-key``), and the ``s2-stream-config`` header. Deletion is
immediate (S2 deletes asynchronously and answers 409 ``stream_deletion_pending`` meanwhile).

Run it with ``python -m resumable_chat.testing.s2_server --host 127.0.0.1 --port N``: it serves
HTTP/1.1 and cleartext HTTP/2 (prior knowledge, as the SDKs use on ``http://`` endpoints) on
one port under hypercorn. It needs the ``testing`` extra (``pip install
'resumable-chat[testing]'``). Failures can be injected through :class:`Faults`; the ready-made,
per-test configurable one is :class:`~resumable_chat.testing.fault_plan.FaultPlan`.
"""

from __future__ import annotations

from typing import Final

#: What to install when the server's optional dependencies are missing.
EXTRA_HINT: Final = "pip install 'resumable-chat[testing]'"

try:  # protobuf (and hypercorn, for main) come with the ``testing`` extra
    from resumable_chat.testing.s2_compat.app import create_app, main
    from resumable_chat.testing.s2_compat.model import (
        IMPLEMENTED_OPERATIONS,
        NOT_IMPLEMENTED_OPERATIONS,
        ConnectionDroppedError,
        Faults,
        SessionFault,
        drop_connection,
    )
    from resumable_chat.testing.s2_compat.server import S2TestServer
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess
    if __name__ == "__main__":
        raise SystemExit(
            f"the bundled S2 server needs the 'testing' extra ({_missing.name} is missing): "
            f"{EXTRA_HINT}"
        ) from None
    raise ImportError(
        f"resumable_chat.testing.s2_server needs the 'testing' extra: {EXTRA_HINT}"
    ) from _missing

__all__ = [
    "EXTRA_HINT",
    "IMPLEMENTED_OPERATIONS",
    "NOT_IMPLEMENTED_OPERATIONS",
    "ConnectionDroppedError",
    "Faults",
    "S2TestServer",
    "SessionFault",
    "create_app",
    "drop_connection",
    "main",
]


if __name__ == "__main__":
    main()
