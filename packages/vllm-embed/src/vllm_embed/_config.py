"""Config readers (placeholder: the real readers replace this module)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EmbedConfig", "load_config"]


@dataclass(frozen=True)
class EmbedConfig:
    """One resolved, immutable embedding configuration."""

    base_urls: tuple[str, ...] = ()
    api_key: Any = None
    model: str | None = None
    dimension: int | None = None
    dimensions: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    retries: int | None = None
    backoff_factor: float | None = None
    batch_size: int | None = None
    max_concurrency: int | None = None
    vector: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    format: str | None = None
    origins: Mapping[str, str] = field(default_factory=dict)

    def client_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError


def load_config(
    source: str | os.PathLike[str] | None = None,
    *,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> EmbedConfig:
    raise NotImplementedError
