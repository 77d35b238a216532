"""The S2 log port: the data model, typed errors and two basins with identical semantics.

- :class:`HttpBasin`: S2 REST v1 over one shared ``httpx.AsyncClient`` (s2.dev, s2-lite,
  the bundled test server).
- :class:`MemoryBasin`: the embedded, in-process default.
- :func:`basin_from_env`: S2 when ``S2_ACCESS_TOKEN`` and ``S2_BASIN`` are set, else embedded.
- :func:`check_basin`: the start-up check, one cheap request that names a misconfiguration.
- :func:`check_basin_name` / :func:`check_stream_name`: S2's naming rules.
"""

from resumable_chat.s2.basin import Basin
from resumable_chat.s2.check import PROBE_STREAM, check_basin
from resumable_chat.s2.config import basin_from_env
from resumable_chat.s2.errors import (
    BasinNotFoundError,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2AuthError,
    S2CertificateError,
    S2ConfigError,
    S2Error,
    S2InvalidError,
    S2NameError,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from resumable_chat.s2.http import HttpBasin
from resumable_chat.s2.memory import MemoryBasin
from resumable_chat.s2.names import check_basin_name, check_stream_name
from resumable_chat.s2.records import (
    AppendAck,
    AppendInput,
    AppendRecord,
    ReadBatch,
    SequencedRecord,
    StreamPosition,
    fence_record,
    is_fence,
    is_terminal_fence,
    is_trim,
    metered_bytes,
    trim_record,
)

__all__ = [
    "PROBE_STREAM",
    "AppendAck",
    "AppendInput",
    "AppendRecord",
    "Basin",
    "BasinNotFoundError",
    "FencingTokenMismatchError",
    "HttpBasin",
    "MemoryBasin",
    "RangeNotSatisfiableError",
    "ReadBatch",
    "S2AuthError",
    "S2CertificateError",
    "S2ConfigError",
    "S2Error",
    "S2InvalidError",
    "S2NameError",
    "S2UnavailableError",
    "SeqNumMismatchError",
    "SequencedRecord",
    "StreamNotFoundError",
    "StreamPosition",
    "basin_from_env",
    "check_basin",
    "check_basin_name",
    "check_stream_name",
    "fence_record",
    "is_fence",
    "is_terminal_fence",
    "is_trim",
    "metered_bytes",
    "trim_record",
]
