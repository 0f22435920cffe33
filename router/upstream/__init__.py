"""Upstream clients: one module per kind behind the narrow `Upstream` interface."""

from .base import Reply, Upstream, UpstreamUnavailable

__all__ = ["Reply", "Upstream", "UpstreamUnavailable"]
