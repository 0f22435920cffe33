"""Testing a backend's tool path before trusting it: `agentgate probe` (one multi-turn agent conversation) and
`agentgate bench tools` (the repair on/off A/B under concurrent load)."""

from .report import ProbeReport, TurnResult, summarize
from .runner import DEFAULT_BASE_URL, ProbeSettings, run_probe
from .tasks import SYSTEM_PROMPT, Task, generate_tasks
from .toolset import TOOLS, Workspace

__all__ = ["DEFAULT_BASE_URL", "SYSTEM_PROMPT", "TOOLS", "ProbeReport", "ProbeSettings", "Task", "TurnResult",
           "Workspace", "generate_tasks", "run_probe", "summarize"]
