"""``vllm-embed migrate http://host:6333 --collection NAME``: the Qdrant server branch.

The API key comes from ``QDRANT_API_KEY`` (never from the command line, never printed);
the URL is printed with any credentials masked. The migration itself is
`vllm_embed.migrate._qdrant_switch.migrate_qdrant_collection`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from vllm_embed._secrets import mask_url
from vllm_embed.migrate import _qdrant_collections
from vllm_embed.migrate._qdrant_collections import API_KEY_ENV

__all__ = ["API_KEY_ENV", "connect_qdrant", "migrate_qdrant_url"]


def connect_qdrant(url: str, *, timeout: float = 10.0) -> Any:
    """`vllm_embed.migrate._qdrant_collections.connect_qdrant`, saying when the key goes
    over plain http."""
    client = _qdrant_collections.connect_qdrant(url, timeout=timeout)
    if os.environ.get(API_KEY_ENV) and url.startswith("http://"):
        click.echo("warning      the API key is sent over plain http", err=True)
    return client


def migrate_qdrant_url(
    url: str,
    *,
    collection: str | None,
    text_field: str | None,
    vector_name: str | None,
    make_client: Callable[[], Any],
    dry_run: bool,
    yes: bool,
    progress: Callable[[], Any],
) -> None:
    """Print what is found, then migrate the collection (or alias) behind ``--collection``."""
    from vllm_embed.migrate import _qdrant_switch as qs
    from vllm_embed.migrate import space_of_client

    client = connect_qdrant(url)
    try:
        click.echo(f"server       Qdrant {mask_url(url)}", err=True)
        if collection is None:
            names = ", ".join(qs.list_names(client)) or "none"
            raise click.UsageError(
                f"name the collection (or alias) to migrate with --collection; found: {names}"
            )
        source = qs.inspect_collection(
            client, collection, text_field=text_field, vector_name=vector_name
        )
        click.echo(f"found        {source.describe()}", err=True)
        with make_client() as embedder:
            space = space_of_client(embedder)
            click.echo(f"new space    {space.describe()}", err=True)
            missing = qs.missing_text_error(source)
            if missing is not None:
                raise missing
            if dry_run:
                seconds = qs.estimate_seconds(embedder, source)
                click.echo(
                    f"would migrate {len(source.points)} points, dimension {source.old_dim} -> "
                    f"{space.dimension} (about {seconds:.0f} s of embedding) into "
                    f"{qs.new_collection_name(source, space)}, then switch {collection!r}"
                )
                click.echo("dry run: nothing written")
                return
            _confirm(collection, source.is_alias, yes)
            report = qs.migrate_qdrant_collection(
                client,
                collection,
                embedder,
                space,
                text_field=text_field,
                vector_name=vector_name,
                progress=progress(),
                source=source,
            )
    finally:
        client.close()
    _print_report(report)


def _confirm(name: str, is_alias: bool, yes: bool) -> None:
    import sys

    if yes or not sys.stdin.isatty():
        return
    what = "move alias" if is_alias else "replace collection"
    click.confirm(
        f"Re-embed {name!r} into a new collection and {what} {name!r} (the old points are "
        "kept as a backup collection)?",
        abort=True,
        err=True,
    )


def _print_report(report: Any) -> None:
    if report.unchanged:
        click.echo(f"unchanged    {report.name}: already embedded with this model and dimension")
        return
    click.echo(f"migrated     {report.name} -> collection {report.new_collection}")
    click.echo(f"points       {report.points} ({report.resumed} written by an earlier run)")
    click.echo(f"dimension    {report.old_dim} -> {report.new_dim}")
    click.echo(f"switch       {report.switch}")
    click.echo(f"time         {report.seconds:.1f} s")
    click.echo(f"truncated    {report.truncated} inputs cut to the model's context")
    if report.backup:
        click.echo(
            f"backup       collection {report.backup} (the old points); drop it when no longer "
            f"needed: QdrantClient(...).delete_collection({report.backup!r})"
        )
