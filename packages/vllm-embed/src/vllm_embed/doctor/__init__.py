"""doctor: is this config's server, and this store, what the app expects?

The judging behind ``vllm-embed doctor``, callable from the CLI, the adapters or an app;
it returns structured :class:`Check` results (status, name, detail, fix, collection) and
prints nothing.

- :func:`run_checks` -- server reachable, API key accepted, model served, dimension,
  max_model_len, round trip, for each of the config's base URLs;
- :func:`check_store` -- a file store's (or each Chroma collection's) embedding space
  against the server's;
- :func:`check_postgres_store` -- each pgvector table / LangChain collection;
- :func:`run_doctor` -- all of it, as the command runs it;
- :func:`migrate_command` -- the one builder of the ``vllm-embed migrate`` fix command.
"""

from __future__ import annotations

from vllm_embed._config import EmbedConfig
from vllm_embed.doctor._checks import Check, Status
from vllm_embed.doctor._fix import migrate_command
from vllm_embed.doctor._postgres import check_postgres_store
from vllm_embed.doctor._server import (
    ROUND_TRIP_TEXT,
    config_migrate_command,
    describe_origin,
    run_checks,
)
from vllm_embed.doctor._store import PROBE_TEXTS, check_store

__all__ = [
    "PROBE_TEXTS",
    "ROUND_TRIP_TEXT",
    "Check",
    "Status",
    "check_postgres_store",
    "check_store",
    "config_migrate_command",
    "describe_origin",
    "migrate_command",
    "run_checks",
    "run_doctor",
]


def _is_postgres_url(store: str) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` store (judged table by table)."""
    return store.startswith(("postgresql://", "postgres://"))


def run_doctor(
    cfg: EmbedConfig,
    *,
    timeout: float = 10.0,
    section: str | None = None,
    store: str | None = None,
    allow_dangerous_deserialization: bool = False,
    collection: str | None = None,
) -> list[Check]:
    """Every check ``vllm-embed doctor`` runs: the server's, then ``store``'s if given.

    The store is judged only when every server check passed or warned (else one SKIP).
    ``collection`` picks one collection of the store (Chroma, kano, LangChain pgvector).
    """
    checks = run_checks(cfg, timeout=timeout, section=section)
    if store is None:
        return checks
    if not all(c.status in ("pass", "warn") for c in checks):
        return [*checks, Check("store space", "skip", "the server checks failed")]
    if _is_postgres_url(store):
        return checks + check_postgres_store(cfg, store, timeout=timeout, collection=collection)
    return checks + check_store(
        cfg,
        store,
        timeout=timeout,
        section=section,
        allow_dangerous_deserialization=allow_dangerous_deserialization,
        collection=collection,
    )
