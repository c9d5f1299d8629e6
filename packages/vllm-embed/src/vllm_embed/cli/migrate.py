"""``vllm-embed migrate``: re-embed a vector store for a new model or dimension."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from vllm_embed.cli._observe import observability_options, observing
from vllm_embed.cli._options import client_options, server_options
from vllm_embed.migrate import (
    ConfigUpdate,
    DryRunReport,
    MigrationOptions,
    MigrationResult,
    migrate_store,
    open_store,
    plan_config_update,
    work_dir_for,
)
from vllm_embed.migrate import dry_run as run_dry_run
from vllm_embed.migrate._engine import DEFAULT_CHUNK_ROWS
from vllm_embed.migrate._store import Store

__all__ = ["migrate"]

PLAIN_PROGRESS_SECONDS = 5.0


class _BarProgress:
    """tqdm bar (count, rate, ETA) for a terminal."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int, done: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total, initial=done, unit="rec", desc="embedding", dynamic_ncols=True
        )

    def advance(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _LineProgress:
    """Plain periodic lines (for logs and pipes): count, percentage, rate, ETA."""

    def __init__(self, every: float = PLAIN_PROGRESS_SECONDS) -> None:
        self._every = every
        self._total = self._done = self._first = 0
        self._began = self._last = 0.0

    def start(self, total: int, done: int) -> None:
        self._total, self._done, self._first = total, done, done
        self._began = self._last = time.monotonic()
        if done:
            click.echo(f"resuming: {done}/{total} records already embedded", err=True)

    def advance(self, n: int) -> None:
        self._done += n
        now = time.monotonic()
        if now - self._last >= self._every or self._done >= self._total:
            self._last = now
            click.echo(self._line(now), err=True)

    def _line(self, now: float) -> str:
        elapsed = max(now - self._began, 1e-9)
        rate = (self._done - self._first) / elapsed
        left = (self._total - self._done) / rate if rate > 0 else 0.0
        pct = 100.0 * self._done / self._total if self._total else 100.0
        return (
            f"embedded {self._done}/{self._total} ({pct:.0f}%) {rate:,.0f} rec/s, ETA {left:.0f} s"
        )

    def close(self) -> None:
        pass


def _client(
    config: str | None,
    section: str | None,
    explicit: dict[str, Any],
) -> Any:
    from vllm_embed import EmbeddingClient

    return EmbeddingClient.from_config(config, section=section, **explicit)


#: Options that only a Postgres migration reads (parameter name -> why).
_POSTGRES_ONLY: dict[str, str] = {
    "tables": "it picks tables of a postgresql:// database",
    "id_column": "it names a column of a Postgres table",
    "text_column": "it names a column of a Postgres table",
    "vector_column": "it names a column of a Postgres table",
    "drop_backup": "it drops the backup tables a Postgres migration keeps",
    "lock_timeout": "it bounds the wait for a Postgres lock",
}

#: Options that a Postgres migration cannot use (parameter name -> why).
_FILE_ONLY: dict[str, str] = {
    "out": "a Postgres table is re-embedded into a shadow table and switched in place, "
    "the old one kept as a backup",
    "text_field": "a Postgres table's text column is found from its layout or given with "
    "--text-column",
    "vector_name": "it picks a named vector of a Qdrant collection; a Postgres table's "
    "vector column is given with --vector-column",
    "update_config": "the tables record their new embedding space themselves; update the "
    "app config by hand",
    "allow_dangerous_deserialization": "it unpickles a LangChain FAISS .pkl; a database "
    "holds no pickle",
    "drop_missing_text": "a Postgres row without text is embedded as an empty text",
}


def _is_postgres_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def _refuse_inapplicable(ctx: click.Context, postgres: bool) -> None:
    """A usage error for an option given on the command line that this store cannot use."""
    table, kind = (_FILE_ONLY, "file stores") if postgres else (_POSTGRES_ONLY, "Postgres")
    store = "a postgresql:// URL" if postgres else "a file store, not a postgresql:// URL"
    for param in ctx.command.params:
        why = table.get(param.name or "")
        if why is None:
            continue
        source = ctx.get_parameter_source(param.name or "")
        if source in (None, click.core.ParameterSource.DEFAULT):
            continue
        option = param.opts[0]
        raise click.UsageError(
            f"{option} applies only to {kind} ({why}); STORE is {store}. Remove {option}."
        )


def _describe(store: Store) -> str:
    dim = store.old_dim if store.old_dim is not None else "unknown"
    why = f" ({store.text_field_reason})" if store.text_field_reason else ""
    return (
        f"format: {store.format}; {len(store.ids)} records; text from {store.text_field}"
        f"{why}; dimension {dim}"
    )


def _print_dry_run(report: DryRunReport, model: str) -> None:
    kept = report.records - len(report.missing_text)
    click.echo(f"format       {report.format}")
    click.echo(f"store        {report.source}")
    click.echo(f"records      {report.records} ({len(report.missing_text)} without text)")
    click.echo(f"text field   {report.text_field}")
    click.echo(f"dimension    {report.old_dim} -> {report.new_dim} (probed, model {model})")
    if report.resumable_records:
        click.echo(f"resumable    {report.resumable_records} records already embedded")
    click.echo(
        f"estimate     ~{report.estimated_seconds:.1f} s for {kept} records "
        f"(probe: {report.probe_records} records in {report.probe_seconds:.3f} s, one request)"
    )
    if report.missing_text:
        shown = ", ".join(map(repr, report.missing_text[:10]))
        click.echo(
            f"warning      records without text: {shown}; a real run stops unless "
            "--drop-missing-text"
        )
    click.echo("dry run: nothing written")


def _print_summary(result: MigrationResult, config_lines: list[str]) -> None:
    click.echo(f"migrated     {result.format}: {result.output}")
    dropped = f", {len(result.dropped)} dropped" if result.dropped else ""
    click.echo(f"records      {result.records}{dropped}")
    click.echo(f"dimension    {result.old_dim} -> {result.new_dim}")
    click.echo(
        f"time         {result.seconds:.1f} s; embedded {result.embedded_now} records in "
        f"{result.embed_seconds:.1f} s ({result.rate:,.0f} records/s)"
    )
    if result.resumed:
        click.echo(f"resumed      {result.resumed} records embedded by an earlier run")
    click.echo(f"truncated    {result.truncated} inputs cut to the model's context")
    click.echo(f"verified     {', '.join(result.verified_with)}")
    if result.backup is not None:
        click.echo(f"backup       {result.backup}")
    for line in config_lines:
        click.echo(f"config       {line}")


@click.command("migrate")
@click.argument("store")
@server_options()
@client_options
@click.option(
    "--out", type=click.Path(path_type=Path), help="Write a new store here instead of in place."
)
@click.option(
    "--text-field",
    help="Record field holding the text (generic nano-vectordb; Qdrant: the payload key; "
    "sqlite-vec: the text column; LanceDB: the column; Milvus: the field).",
)
@click.option(
    "--collection",
    help="Migrate only this collection of a Chroma directory, or pick the kano index of "
    "this collection, or (Postgres) only this LangChain collection (default: every one); "
    "Qdrant: the collection to migrate; sqlite-vec: the vec0 table; LanceDB: the table; "
    "Milvus: the collection or alias.",
)
@click.option(
    "--vector-name",
    help="Qdrant: the named vector to re-embed (the others are kept; default: the only one, "
    "or LlamaIndex's text-dense).",
)
@click.option("--drop-missing-text", is_flag=True, help="Leave out records that have no text.")
@click.option(
    "--allow-dangerous-deserialization",
    is_flag=True,
    help="Unpickle a LangChain FAISS folder's .pkl (runs code from the file, as LangChain's "
    "FAISS.load_local warns): only for stores you trust.",
)
@click.option("--dry-run", is_flag=True, help="Probe and estimate; write nothing.")
@click.option(
    "--update-config",
    "update_config",
    type=click.Path(path_type=Path),
    help="After success, set the new dimension (and model) in this TOML/JSON config "
    "(for a Python config, print the lines to change).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before replacing in place.")
@click.option(
    "--table", "tables", multiple=True, help="Postgres: only this table (repeatable; SCHEMA.T ok)."
)
@click.option("--id-column", help="Postgres, another table shape: its unique key column.")
@click.option("--text-column", help="Postgres, another table shape: the text column.")
@click.option("--vector-column", help="Postgres, another table shape: the vector column.")
@click.option(
    "--drop-backup", is_flag=True, help="Postgres: drop the backups of finished migrations."
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0.001),
    default=5.0,
    show_default=True,
    help="Postgres: seconds to wait for another session's lock before giving up.",
)
@observability_options
def migrate(
    store: str,
    config: str | None,
    section: str | None,
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    dimensions: int | None,
    out: Path | None,
    text_field: str | None,
    collection: str | None,
    vector_name: str | None,
    drop_missing_text: bool,
    allow_dangerous_deserialization: bool,
    dry_run: bool,
    update_config: Path | None,
    batch_size: int | None,
    cache: str | None,
    yes: bool,
    tables: tuple[str, ...],
    id_column: str | None,
    text_column: str | None,
    vector_column: str | None,
    drop_backup: bool,
    lock_timeout: float,
    metrics_port: int | None,
    metrics_host: str,
    otel: bool,
) -> None:
    """Re-embed a vector store (nano-vectordb, LlamaIndex, LangChain, FAISS, Chroma, kano,
    Qdrant, sqlite-vec, LanceDB, Milvus Lite).

    STORE is a nano-vectordb JSON file (DVD database.json, LightRAG vdb_*.json), a
    LlamaIndex persist directory, a LangChain InMemoryVectorStore.dump() file, a LangChain
    FAISS save_local folder (needs --allow-dangerous-deserialization), LightRAG's
    faiss_index_NAMESPACE.index, a Chroma persistent directory, a kano-backlog SQLite
    index (file, meta.json or .cache/vectors/), a Qdrant local-mode directory
    (--collection, --vector-name, --text-field for plain payloads), a SQLite file with
    sqlite-vec vec0 tables (--collection picks the vec0 table), a LanceDB database
    directory or a Milvus Lite database (./milvus.db); the format is detected.
    A Milvus server URI (http://[USER:PASSWORD@]HOST:19530[/DB], token also from
    MILVUS_TOKEN) gets a new collection beside the old one, switched in with aliases;
    the old collection is kept as the backup.
    The new store records the embedding space (model, dimension, instructions) for
    `vllm-embed doctor --store`. The original is replaced only once the new store is
    complete and verified, and kept as NAME.d<old dim>.bak[.EXT] (a kano index is written
    under the file name of its new embedding space). An interrupted run (server gone,
    Ctrl-C, reboot) resumes when the same command is run again.

    STORE may also be a postgresql://USER@HOST:PORT/DB URL (password from the URL,
    PGPASSWORD or ~/.pgpass): LangChain, LlamaIndex and LightRAG pgvector tables are
    found and listed; each is re-embedded into a shadow table and switched in one
    transaction, the old table kept as <table>_vllm_bak_d<old dim> until --drop-backup.

    STORE may also be a Qdrant server URL (http(s)://HOST:6333; API key from
    QDRANT_API_KEY) with --collection NAME (a collection or an alias): NAME is re-embedded
    into a new collection with the same configuration, verified, and NAME becomes an alias
    of it (the old points are kept in a backup collection, printed).
    """
    _refuse_inapplicable(click.get_current_context(), _is_postgres_url(store))
    explicit = {
        "base_url": base_url,
        "api_key": api_key,
        "model": model,
        "dimensions": dimensions,
        "batch_size": batch_size,
        "cache": cache,
    }
    # --metrics-port / --otel: set up now, torn down when the command ends
    explicit.update(
        click.get_current_context().with_resource(observing(metrics_port, metrics_host, otel))
    )
    if _is_postgres_url(store):
        from vllm_embed.cli._postgres import PgArgs, migrate_postgres

        pg_args = PgArgs(
            tables=tables,
            collections=(collection,) if collection else (),
            id_column=id_column,
            text_column=text_column,
            vector_column=vector_column,
            drop_backup=drop_backup,
            lock_timeout=lock_timeout,
            batch_rows=max(2048, 4 * (batch_size or 0)),
        )
        migrate_postgres(
            store,
            pg_args,
            lambda: _client(config, section, explicit),
            dry_run=dry_run,
            yes=yes,
            progress=lambda: _BarProgress() if sys.stderr.isatty() else _LineProgress(),
        )
        return
    from vllm_embed.migrate._qdrant_collections import looks_like_qdrant_url

    if looks_like_qdrant_url(store):
        from vllm_embed.cli._qdrant import migrate_qdrant_url

        _refuse_for_qdrant(out, update_config, drop_missing_text, allow_dangerous_deserialization)
        migrate_qdrant_url(
            store,
            collection=collection,
            text_field=text_field,
            vector_name=vector_name,
            make_client=lambda: _client(config, section, explicit),
            dry_run=dry_run,
            yes=yes,
            progress=lambda: _BarProgress() if sys.stderr.isatty() else _LineProgress(),
        )
        return
    path = Path(store)
    opened = open_store(
        path,
        text_field=text_field,
        collection=collection,
        allow_dangerous_deserialization=allow_dangerous_deserialization,
        vector_name=vector_name,
    )
    click.echo(_describe(opened), err=True)
    plan: ConfigUpdate | None = None
    if update_config is not None and not dry_run:
        plan = plan_config_update(update_config, section)
    chunk_rows = max(DEFAULT_CHUNK_ROWS, 16 * (batch_size or 0))
    options = MigrationOptions(
        out=out,
        drop_missing_text=drop_missing_text,
        dimensions=dimensions,
        chunk_rows=chunk_rows,
    )
    with _client(config, section, explicit) as client:
        if dry_run:
            report = run_dry_run(opened, client, options)
            _print_dry_run(report, client.model_name())
            return
        _confirm(opened, out, yes)
        progress = _BarProgress() if sys.stderr.isatty() else _LineProgress()
        try:
            result = migrate_store(opened, client, options, progress)
        except KeyboardInterrupt:
            work = work_dir_for(opened.output_target(out))
            click.echo(
                f"Interrupted: finished chunks are kept in {work}; run the same command "
                "again to resume. Nothing of the original is lost: it is untouched until "
                "the switch to the new store, and a switch that had begun keeps it under "
                "its backup name.",
                err=True,
            )
            raise
        config_lines = plan.apply(result.new_dim, client.model_name()) if plan else []
        stats = client.stats
        cache_line = (
            f"{stats.cache_hits} texts from the cache, {stats.cache_misses} embedded "
            f"({client.cache.location})"
            if client.cache is not None
            else None
        )
    _print_summary(result, config_lines)
    for line in getattr(opened, "switched", []):  # a Milvus server: its aliases, its backups
        click.echo(line)
    if cache_line:
        click.echo(f"cache        {cache_line}")


def _refuse_for_qdrant(out: Path | None, update_config: Path | None, *flags: bool) -> None:
    """Options a Qdrant server URL cannot use (it is switched behind an alias in place)."""
    if out is not None or update_config is not None or any(flags):
        raise click.UsageError(
            "a Qdrant server URL is migrated into a new collection behind the same name (the "
            "old points kept as a backup collection): --out, --update-config, "
            "--drop-missing-text and --allow-dangerous-deserialization do not apply"
        )


def _confirm(store: Store, out: Path | None, yes: bool) -> None:
    if out is not None or yes or not sys.stdin.isatty():
        return
    click.confirm(
        f"Replace {store.target} in place (the original is kept as a backup)?",
        abort=True,
        err=True,
    )
