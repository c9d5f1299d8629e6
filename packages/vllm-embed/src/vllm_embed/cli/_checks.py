"""What one ``doctor`` check found (`Check`, `Status`): shared by the command in
:mod:`vllm_embed.cli.config` and the Postgres store checks in :mod:`vllm_embed.cli._postgres`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Status"]

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, the outcome, and how to fix a failure."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
