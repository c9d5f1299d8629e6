"""``vllm-embed cache stats|clear PATH|URL``: look into and empty an embedding cache."""

from __future__ import annotations

import json

import click

from vllm_embed._cache import EmbeddingCache
from vllm_embed._cache._sqlite import remove_files
from vllm_embed._errors import CacheCorruptError

__all__ = ["cache"]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@click.group()
def cache() -> None:
    """Inspect or clear an embedding cache (a SQLite path or a redis:// URL)."""


@cache.command()
@click.argument("location")
@click.option("--namespace", default="", help="The cache namespace the app uses.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(location: str, namespace: str, as_json: bool) -> None:
    """Entries and bytes, in all and per model."""
    with EmbeddingCache(location, namespace=namespace, strict=True) as c:
        info = c.stats()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"cache     {info['location']} ({info['backend']})")
    click.echo(f"entries   {info['entries']}")
    click.echo(f"vectors   {_human(info['value_bytes'])}")
    if "file_bytes" in info:
        limit = info.get("max_bytes")
        click.echo(
            f"file      {_human(info['file_bytes'])}"
            + (f" (limit {_human(limit)})" if limit else "")
        )
    if info.get("ttl"):
        click.echo(f"ttl       {info['ttl']} s")
    for model, slot in sorted(info["models"].items()):
        click.echo(f"  {model}: {slot['entries']} entries, {_human(slot['bytes'])}")


@cache.command()
@click.argument("location")
@click.option("--model", default=None, help="Only this served model id's entries.")
@click.option("--namespace", default="", help="The cache namespace the app uses.")
def clear(location: str, model: str | None, namespace: str) -> None:
    """Delete the cache's entries (all, or one model's). A damaged SQLite file is removed."""
    try:
        c = EmbeddingCache(location, namespace=namespace, strict=True)
    except CacheCorruptError as exc:
        path = exc.location or location
        if model is not None:
            raise
        removed = remove_files(path)
        click.echo(f"Removed the damaged cache: {', '.join(removed)}")
        return
    with c:
        n = c.clear(model)
    what = f"model {model}" if model else "all models"
    click.echo(f"Cleared {n} entries ({what}) from {c.location}")
