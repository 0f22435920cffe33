"""agentgate HTTP router: config, routing, upstream clients, middleware, metrics, CLI."""
