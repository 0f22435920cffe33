"""Tool-call repair: raw model output + declared tools -> a valid OpenAI assistant message.

Pure library: no I/O, no global state. See `repair_message` and `StreamRepairer`.
"""

from repair.core import data_answer, repair_message, requires_call
from repair.formats import FAMILIES, family_for_parser_type, sniff_template
from repair.index import ToolIndex
from repair.stream import StreamRepairer
from repair.types import ContentDelta, ReasoningDelta, RepairIssue, RepairResult, StreamEvent, ToolCallDelta

__all__ = [
    "FAMILIES",
    "ContentDelta",
    "ReasoningDelta",
    "RepairIssue",
    "RepairResult",
    "StreamEvent",
    "StreamRepairer",
    "ToolCallDelta",
    "ToolIndex",
    "data_answer",
    "family_for_parser_type",
    "repair_message",
    "requires_call",
    "sniff_template",
]
