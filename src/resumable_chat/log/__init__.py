"""The log engine: the one implementation of the generation protocol over an S2 basin.

claim (per mode) → fenced batching writer with heartbeats → terminal fence, or crash takeover
after a lease of silence → followers with a lease watchdog. See :mod:`.engine`.
"""

from .claims import MODES, Claim, Mode
from .engine import MAX_SAFE_INTEGER, LogConfig, LogEngine, Status
from .errors import FencedOutError, GenerationLostError, LogGapError, StreamInUseError
from .follow import LogEvent
from .generation import Generation, Outcome, Output, Producer, StopSignal, close_source
from .ownership import PROCESS_OWNERSHIP, Ownership
from .records import RecordKind, classify, record_id
from .scan import LatestGeneration, last_record, latest_generation, read_range
from .writer import LogWriter, WriterClosedError

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
