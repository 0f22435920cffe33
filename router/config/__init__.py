"""Configuration: schema, loading, and the resolved dataclasses."""

from .load import ConfigError, load_config, parse_config
from .model import Config

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]
