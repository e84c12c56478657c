"""Settings vocabulary shared by every layer: one upstream account, the start-up error, boolean words.

app/config.py builds these from the environment; provider clients are constructed with them. They
sit here, below both, so that providers never import the module that reads the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value the service cannot start with; the message names the variable."""


@dataclass(frozen=True)
class ProviderSettings:
    """One upstream account: where it lives, its key, and provider-specific extras."""

    name: str
    api_key: str | None
    base_url: str
    timeout: float
    extra_models: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    key_env: str | None = None  # the variable holding the key: <PREFIX>_API_KEY, or a routing-file channel's own

    @property
    def key_variable(self) -> str:
        return self.key_env or ""

    def __repr__(self) -> str:  # never print the key
        return f"ProviderSettings(name={self.name!r}, base_url={self.base_url!r}, key={'set' if self.api_key else 'unset'})"


def parse_flag(raw: object, variable: str, default: bool = False) -> bool:
    """A boolean setting from its text; unset means `default`, anything unrecognised names the variable."""
    if raw is None:
        return default
    word = str(raw).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConfigError(f"{variable} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")
