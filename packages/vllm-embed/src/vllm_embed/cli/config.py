"""``vllm-embed config show`` and ``vllm-embed doctor``.

``config show [FILE]`` prints every resolved setting with the place it came from
(argument, environment variable, file and key, or default); API keys and credential-like
headers are masked (``*** (masked, N chars)``), never printed.

``doctor [FILE | --base-url URL] [--store STORE]`` prints one PASS / FAIL / WARN / SKIP
line per check, each failure with a fix; the judging (server reachable, API key accepted,
model served, dimension, max_model_len, round trip, the store's embedding space) is
:mod:`vllm_embed.doctor`'s. Exit code 1 when any check fails.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from vllm_embed import _constants as C
from vllm_embed._config import EmbedConfig, load_config
from vllm_embed._secrets import mask_tree, mask_url
from vllm_embed._settings import SETTING_FIELDS
from vllm_embed.cli._options import server_options
from vllm_embed.doctor import Check, describe_origin, run_doctor

__all__ = ["config", "doctor"]

# what an unset field means, for `config show`
_UNSET_MEANS: dict[str, str] = {
    "api_key": "(none: no Authorization header)",
    "model": "(the server's single model, discovered)",
    "dimension": "(not declared)",
    "dimensions": "(not sent: the model's full size)",
    "headers": "(none)",
    "timeout": f"{C.DEFAULT_TIMEOUT_TOTAL:g} s (client default)",
    "retries": f"{C.DEFAULT_MAX_ATTEMPTS - 1} (client default)",
    "backoff_factor": f"{C.DEFAULT_BACKOFF_FACTOR:g} (client default)",
    "batch_size": f"{C.DEFAULT_BATCH_SIZE} (client default)",
    "max_concurrency": f"{C.DEFAULT_MAX_CONCURRENCY} (client default)",
    "tracing": "off (no spans)",
    "metrics": "off (no metrics)",
}


# ------------------------------------------------------------------------- loading


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show config warnings (unknown keys) as one readable stderr line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)


def _load(file: str | None, section: str | None, overrides: Mapping[str, Any]) -> EmbedConfig:
    with _warnings_to_stderr():
        return load_config(file, section=section, overrides=overrides)


# --------------------------------------------------------------------- config show


def _display_value(cfg: EmbedConfig, name: str) -> str:
    shown = cfg.to_dict(mask_secrets=True)
    value = shown[name]
    if value is None or value == [] or value == {}:
        return _UNSET_MEANS.get(name, "(not set)")
    if name == "base_urls":
        return ", ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if name == "timeout":
        return f"{value:g} s"
    return str(value)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _show_text(cfg: EmbedConfig) -> None:
    source = f"{cfg.source} ({cfg.format})" if cfg.source else "environment and arguments only"
    click.echo(f"Config: {source}")
    rows = [
        ("base_url" if n == "base_urls" else n, _display_value(cfg, n), cfg.origins[n])
        for n in SETTING_FIELDS
    ]
    width = max(len(r[0]) for r in rows) + 2
    value_width = min(max(len(r[1]) for r in rows) + 2, 60)
    for name, value, origin in rows:
        click.echo(f"  {name:<{width}}{value:<{value_width}}{describe_origin(origin)}")
    tables: list[tuple[str, Mapping[str, Any], str | None]] = [
        ("vector", cfg.vector, cfg.origins.get("vector", "default")),
        ("extra", cfg.extra, None),
    ]
    for title, table, table_origin in tables:
        if not table:
            continue
        where = f" (from {describe_origin(table_origin)})" if table_origin else ""
        click.echo(f"{title}{where}:")
        for key, value in _flatten(mask_tree(table)):
            click.echo(f"  {key} = {value}")


@click.group("config")
def config() -> None:
    """Inspect embedding configs (TOML, JSON, Python, environment)."""


@config.command("show")
@click.argument("file", required=False)
@click.option("--section", help="Dotted path of the settings table, e.g. pdf_knowledge.embedder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(file: str | None, section: str | None, as_json: bool) -> None:
    """Print the resolved settings and where each came from (keys masked).

    FILE is a .toml / .json / .py config or a dotted module name; a Python config is
    executed to read it. Without FILE only the environment is read.
    """
    cfg = _load(file, section, {})
    if as_json:
        data = cfg.to_dict(mask_secrets=True)
        data["origins"] = dict(cfg.origins)
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _show_text(cfg)


_MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


def _print_checks(cfg: EmbedConfig, checks: list[Check]) -> None:
    where = f"{cfg.source} " if cfg.source else ""
    click.echo(f"vllm-embed doctor: {where}-> {', '.join(mask_url(u) for u in cfg.base_urls)}")
    width = max(len(c.name) for c in checks) + 2
    for check in checks:
        color = {"pass": "green", "fail": "red", "warn": "yellow", "skip": None}[check.status]
        mark = click.style(_MARK[check.status], fg=color, bold=check.status == "fail")
        click.echo(f"  {mark}  {check.name:<{width}}{check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            click.echo(f"        {'':<{width}}fix: {check.fix}")
    failed = sum(c.status == "fail" for c in checks)
    click.echo(f"{failed} check(s) failed." if failed else "All checks passed.")


@click.command("doctor")
@click.argument("file", required=False)
@server_options(config=False, api_key_envvar=False)
@click.option("--dimension", type=int, help="The dimension your store was built with.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds per request.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    "--store",
    "store",
    help="A vector store to compare with the live server: its recorded embedding space, or "
    "a probe of a few stored vectors.",
)
@click.option(
    "--allow-dangerous-deserialization",
    is_flag=True,
    help="Let --store read a LangChain FAISS .pkl (a pickle runs code: trusted stores only).",
)
@click.option(
    "--collection",
    help="With --store: judge only this collection of a Chroma directory (NAME or "
    "TENANT/DATABASE/NAME), kano index or LangChain pgvector table (default: every "
    "collection, one check each); the collection or alias of a Qdrant server URL.",
)
def doctor(
    file: str | None,
    base_url: str | None,
    api_key: str | None,
    model: str | None,
    dimension: int | None,
    section: str | None,
    timeout: float,
    as_json: bool,
    store: str | None,
    allow_dangerous_deserialization: bool,
    collection: str | None,
) -> None:
    """Check a config against its live server.

    Checks, each printed as PASS / FAIL / WARN / SKIP with a fix: server reachable, API
    key accepted, model served, real dimension equals the declared one (else the
    `vllm-embed migrate` command for the store), max_model_len, a timed round trip.
    With --store PATH: the store's embedding space (model, dimension, instructions, as
    `vllm-embed migrate` records it) against the server's; a store without a record is
    probed (a few stored texts re-embedded, cosine against the stored vectors). A Chroma
    directory gets one check per collection (or --collection NAME). --store
    postgresql://USER@HOST:PORT/DB checks every pgvector table found the same way;
    --store http://HOST:6333 --collection NAME one collection (or alias) of a Qdrant
    server (API key from QDRANT_API_KEY, never printed).

    FILE is a .toml / .json / .py config or a dotted module name (a Python config is
    executed to read it). Exit code 1 when any check fails.
    """
    if collection is not None and store is None:
        raise click.UsageError("--collection needs --store (the store holding the collection).")
    overrides = {"base_url": base_url, "api_key": api_key, "model": model, "dimension": dimension}
    cfg = _load(file, section, overrides)
    checks = run_doctor(
        cfg,
        timeout=timeout,
        section=section,
        store=store,
        allow_dangerous_deserialization=allow_dangerous_deserialization,
        collection=collection,
    )
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        _print_checks(cfg, checks)
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)
