"""The S2 log port: the data model, typed errors and two basins with identical semantics.

- :class:`HttpBasin`: S2 REST v1 over one shared ``httpx.AsyncClient`` (s2.dev, s2-lite,
  the bundled test server).
- :class:`MemoryBasin`: the embedded, in-process default.
"""

from .basin import Basin
from .errors import (
    BasinNotFoundError,
    FencingTokenMismatchError,
    RangeNotSatisfiableError,
    S2AuthError,
    S2ConfigError,
    S2Error,
    S2InvalidError,
    S2UnavailableError,
    SeqNumMismatchError,
    StreamNotFoundError,
)
from .memory import MemoryBasin
from .records import (
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
    "AppendAck",
    "AppendInput",
    "AppendRecord",
    "Basin",
    "BasinNotFoundError",
    "FencingTokenMismatchError",
    "MemoryBasin",
    "RangeNotSatisfiableError",
    "ReadBatch",
    "S2AuthError",
    "S2ConfigError",
    "S2Error",
    "S2InvalidError",
    "S2UnavailableError",
    "SeqNumMismatchError",
    "SequencedRecord",
    "StreamNotFoundError",
    "StreamPosition",
    "fence_record",
    "is_fence",
    "is_terminal_fence",
    "is_trim",
    "metered_bytes",
    "trim_record",
]
