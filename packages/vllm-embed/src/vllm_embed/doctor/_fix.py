"""The one builder of the ``vllm-embed migrate ...`` command a failed check proposes."""

from __future__ import annotations

import shlex

__all__ = ["STORE_PLACEHOLDER", "migrate_command"]

#: Shown instead of the store when the config does not name it; left unquoted.
STORE_PLACEHOLDER = "<store>"


def migrate_command(
    store: str | None,
    *,
    config: str | None = None,
    section: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    dimensions: int | None = None,
    table: str | None = None,
    collection: str | None = None,
    allow_dangerous_deserialization: bool = False,
) -> str:
    """The shell-quoted ``vllm-embed migrate`` command that re-embeds ``store``.

    With ``config`` the server comes from that file (and ``section``); otherwise from
    ``base_url`` / ``model`` / ``dimensions``. Never carries an API key: the command reads
    ``VLLM_EMBED_API_KEY``. Pass a masked URL as ``store`` for a database.
    """
    parts = ["vllm-embed", "migrate", store or STORE_PLACEHOLDER]
    if config:
        parts += ["--config", config]
        parts += ["--section", section] if section else []
    else:
        parts += ["--base-url", base_url] if base_url else []
        parts += ["--model", model] if model else []
        parts += ["--dimensions", str(dimensions)] if dimensions is not None else []
    parts += ["--table", table] if table else []
    parts += ["--collection", collection] if collection else []
    parts += ["--allow-dangerous-deserialization"] if allow_dangerous_deserialization else []
    return " ".join(p if p == STORE_PLACEHOLDER else shlex.quote(p) for p in parts)
