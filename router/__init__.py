"""agentgate HTTP router: config, routing, upstream clients, middleware, metrics, CLI."""

DISTRIBUTION = "agentgate-router"  # the name on PyPI (`agentgate` there is another project); the command is agentgate


def version() -> str:
    """The installed version, or "unknown" when running from a source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
