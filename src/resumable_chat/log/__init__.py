"""The log engine: the one implementation of the generation protocol over an S2 basin.

claim (per mode) → fenced batching writer with heartbeats → terminal fence, or crash takeover
after a lease of silence → followers with a lease watchdog. See :mod:`.engine`.
"""

from resumable_chat.log.claims import MODES, Claim, Mode
from resumable_chat.log.engine import MAX_SAFE_INTEGER, LogConfig, LogEngine, Status
from resumable_chat.log.errors import (
    FencedOutError,
    GenerationLostError,
    LogGapError,
    StreamInUseError,
)
from resumable_chat.log.follow import LogEvent
from resumable_chat.log.generation import (
    Generation,
    Outcome,
    Output,
    Producer,
    StopSignal,
    close_source,
)
from resumable_chat.log.ownership import PROCESS_OWNERSHIP, Ownership
from resumable_chat.log.records import RecordKind, classify, record_id
from resumable_chat.log.scan import LatestGeneration, last_record, latest_generation, read_range
from resumable_chat.log.writer import LogWriter, WriterClosedError

__all__ = [
    "MAX_SAFE_INTEGER",
    "MODES",
    "PROCESS_OWNERSHIP",
    "Claim",
    "FencedOutError",
    "Generation",
    "GenerationLostError",
    "LatestGeneration",
    "LogConfig",
    "LogEngine",
    "LogEvent",
    "LogGapError",
    "LogWriter",
    "Mode",
    "Outcome",
    "Output",
    "Ownership",
    "Producer",
    "RecordKind",
    "Status",
    "StopSignal",
    "StreamInUseError",
    "WriterClosedError",
    "classify",
    "close_source",
    "last_record",
    "latest_generation",
    "read_range",
    "record_id",
]
