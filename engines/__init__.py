"""agentgate MLX engines: the worker process and its lifecycle."""
