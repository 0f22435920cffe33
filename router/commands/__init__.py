"""Sub-commands of the `agentgate` CLI, one module each."""
