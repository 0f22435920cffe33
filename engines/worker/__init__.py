"""The engine worker: what runs in the child process. server.py (HTTP front), scheduler.py (the one MLX thread),
prefix_cache.py and kv_disk.py, templates.py, constrain/matching/guided.py (constrained decoding), params.py,
sampling.py, decoding.py, cpu_attention.py, tiny.py (offline tiny models) and cli.py (`agentgate engine`)."""
