"""What one doctor check found: :class:`Check` and its :data:`Status`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Status"]

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass(frozen=True)
class Check:
    """One doctor check: what was checked, the outcome, and how to fix a failure.

    ``collection`` names the part of a store the check judged (a Chroma collection, a
    pgvector table or ``TABLE [LangChain collection]``); ``None`` for server checks and
    single-part stores. Callers select by it, never by parsing ``name``.
    """

    name: str
    status: Status
    detail: str
    fix: str | None = None
    collection: str | None = None
