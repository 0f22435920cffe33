"""agentgate MLX engines: worker/ runs in the engine's child process, supervisor/ runs in the router."""
