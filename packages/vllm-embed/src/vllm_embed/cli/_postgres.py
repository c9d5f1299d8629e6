"""``vllm-embed migrate postgresql://...``: the pgvector branch of the migrate command."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from vllm_embed._secrets import mask_url

__all__ = ["PgArgs", "migrate_postgres"]


@dataclass(frozen=True)
class PgArgs:
    """The Postgres-only options of ``vllm-embed migrate``."""

    tables: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    id_column: str | None = None
    text_column: str | None = None
    vector_column: str | None = None
    drop_backup: bool = False
    lock_timeout: float = 5.0
    batch_rows: int = 2048


def migrate_postgres(
    url: str,
    args: PgArgs,
    make_client: Callable[[], Any],
    *,
    dry_run: bool,
    yes: bool,
    progress: Callable[[], Any],
) -> None:
    """Find the tables, print them, then migrate the chosen ones (or drop their backups)."""
    from vllm_embed.migrate import pgvector as pg
    from vllm_embed.migrate import space_of_client

    with pg.connect(url) as conn:
        found = pg.discover(conn)
        targets = pg.select_targets(
            conn,
            found,
            tables=args.tables,
            collections=args.collections,
            id_column=args.id_column,
            text_column=args.text_column,
            vector_column=args.vector_column,
        )
    click.echo(f"database     {mask_url(url)}", err=True)
    _print_found(found, targets)
    if not targets:
        raise click.ClickException(
            "no LangChain, LlamaIndex or LightRAG table found; name another table with "
            "--table T --id-column K --text-column C --vector-column V"
        )
    if args.drop_backup:
        dropped = pg.drop_backups(url, targets)
        for name in dropped:
            click.echo(f"dropped      backup {name}")
        if not dropped:
            click.echo("no backup of a finished migration to drop for these tables")
        return
    with make_client() as client:
        space = space_of_client(client)
        click.echo(f"new space    {space.describe()}", err=True)
        if dry_run:
            for target in targets:
                with pg.connect(url) as conn:
                    pg.preflight(conn, target, args.lock_timeout)
                click.echo(
                    f"would migrate {target.name}: {target.rows} rows, dimension "
                    f"{target.old_dim} -> {space.dimension} (checks passed)"
                )
            click.echo("dry run: nothing written")
            return
        _confirm(targets, yes)
        options = pg.PgOptions(batch_rows=args.batch_rows, lock_timeout=args.lock_timeout)
        for target in targets:
            if _already(pg, url, target, space):
                click.echo(f"unchanged    {target.name}: already embedded with {space.describe()}")
                continue
            report = pg.migrate_table(url, target, client, space, options, progress())
            _print_report(report)


def _already(pg: Any, url: str, target: Any, space: Any) -> bool:
    """True when every chosen part of the table records exactly this space."""
    with pg.connect(url) as conn:
        spaces = pg.read_spaces(conn, target)
    wanted = target.collections or tuple(spaces)
    return all((s := spaces.get(name)) is not None and not s.differences(space) for name in wanted)


def _print_found(found: Sequence[Any], chosen: Sequence[Any]) -> None:
    names = {t.name for t in chosen}
    for target in found:
        mark = "migrate" if target.name in names else "skip   "
        click.echo(f"found        [{mark}] {target.describe()}", err=True)
    for target in chosen:
        if target.name not in {t.name for t in found}:
            click.echo(f"found        [migrate] {target.describe()}", err=True)


def _print_report(report: Any) -> None:
    click.echo(f"migrated     {report.layout} {report.target}")
    click.echo(f"rows         {report.rows} ({report.resumed} embedded by an earlier run)")
    click.echo(f"dimension    {report.old_dim} -> {report.new_dim}")
    click.echo(
        f"time         {report.seconds:.1f} s; embedded {report.embedded_now} rows "
        f"({report.rate:,.0f} rows/s)"
    )
    click.echo(
        f"switch       readers blocked {report.readers_blocked_seconds * 1000:.0f} ms; writers "
        f"waited {report.writers_blocked_seconds:.2f} s (index build "
        f"{report.index_seconds:.2f} s)"
    )
    click.echo(f"truncated    {report.truncated} inputs cut to the model's context")
    click.echo(f"backup       {report.backup} (drop it with --drop-backup)")


def _confirm(targets: Sequence[Any], yes: bool) -> None:
    import sys

    if yes or not sys.stdin.isatty():
        return
    names = ", ".join(t.name for t in targets)
    click.confirm(
        f"Re-embed and switch {names} (the old tables are kept as backups)?", abort=True, err=True
    )
