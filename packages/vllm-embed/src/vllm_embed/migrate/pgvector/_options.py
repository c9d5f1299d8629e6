"""What a Postgres migration is told (`PgOptions`) and what it reports (`MigrationReport`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_BATCH_ROWS = 2048
DEFAULT_LOCK_TIMEOUT = 5.0


@dataclass
class MigrationReport:
    """What one table's migration did (printed as the CLI summary)."""

    target: str
    layout: str
    rows: int
    old_dim: int | None
    new_dim: int
    embedded_now: int
    resumed: int
    caught_up: int
    backup: str
    seconds: float
    embed_seconds: float
    switch_seconds: float
    index_seconds: float
    readers_blocked_seconds: float
    writers_blocked_seconds: float
    truncated: int = 0
    verified_with: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.embedded_now / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PgOptions:
    """How to migrate a Postgres table."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    kind: str = "document"
    #: Test hook: called with the phase name at the fault points: "batch" (after each
    #: committed batch), "built" (new table built, before the switch), "switch" (writers
    #: held), "renamed" (before the commit).
    on_phase: Callable[[str], None] | None = None
