"""``vllm-embed embed``: embed a Parquet / JSONL corpus into a directory of Parquet parts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vllm_embed._embed_job import MANIFEST, EmbedJob, JobSettings, find_inputs, require_pyarrow
from vllm_embed._errors import MissingDependencyError
from vllm_embed.cli._observe import observability_options, observing
from vllm_embed.cli._options import client_options, server_options

__all__ = ["embed"]

RAY_HINT = (
    "--ray runs the job through the vllm-embed-ray package, which is not installed. "
    "Run: pip install vllm-embed-ray   (or: pip install 'vllm-embed[ray]')"
)


def _import_ray_adapter() -> Any:
    try:
        import vllm_embed_ray
    except ImportError as exc:
        raise MissingDependencyError(RAY_HINT) from exc
    return vllm_embed_ray


def _client_kwargs(
    config: str | None, section: str | None, explicit: dict[str, Any]
) -> dict[str, Any]:
    from vllm_embed import load_config

    given = {k: v for k, v in explicit.items() if v is not None and v != ()}
    if "base_url" in given:
        urls = list(given["base_url"])
        given["base_url"] = urls[0] if len(urls) == 1 else urls
    kwargs = dict(load_config(config, section=section).client_kwargs()) if config else {}
    kwargs.update(given)
    return kwargs


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("output", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--column", default="text", show_default=True, help="Column holding the text.")
@click.option(
    "--output-column", default="embedding", show_default=True, help="Column for the vectors."
)
@click.option(
    "--role",
    type=click.Choice(["document", "query", "raw"]),
    default="document",
    show_default=True,
    help="Which instruction the model gets (raw: none).",
)
@click.option(
    "--on-bad-row",
    type=click.Choice(["raise", "drop"]),
    default="raise",
    show_default=True,
    help="A row whose text is missing or not a string: stop naming it, or leave it out.",
)
@server_options(several_urls=True)
@client_options
@click.option("--max-concurrency", type=click.IntRange(min=1), help="Requests in flight.")
@click.option(
    "--part-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows per output part file (the unit of resuming without --ray).",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Run on a Ray cluster through vllm-embed-ray (ADDRESS, e.g. ray://head:10001 or "
    "auto; without one: RAY_ADDRESS or a local Ray). Put it after INPUT OUTPUT.",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="With --ray: embedding actors (2-4 per vLLM replica is a good start).",
)
@click.option(
    "--ray-batch-size", type=click.IntRange(min=1), help="With --ray: rows per actor call."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@observability_options
def embed(
    input_path: Path,
    output: Path,
    column: str,
    output_column: str,
    role: str,
    on_bad_row: str,
    config: str | None,
    section: str | None,
    base_url: tuple[str, ...],
    model: str | None,
    api_key: str | None,
    dimensions: int | None,
    batch_size: int | None,
    cache: str | None,
    max_concurrency: int | None,
    part_rows: int,
    ray_address: str | None,
    ray_actors: int,
    ray_batch_size: int | None,
    quiet: bool,
    metrics_port: int | None,
    metrics_host: str,
    otel: bool,
) -> None:
    """Embed INPUT (a Parquet / JSONL file, or a directory of them) into OUTPUT.

    OUTPUT is a directory of Parquet parts (every input column, plus the vectors as a
    fixed-size float32 list column) and a manifest. Memory stays flat whatever the corpus
    size. Interrupted? Run the same command again: finished parts are kept and skipped.
    """
    from vllm_embed import EmbeddingClient

    require_pyarrow()
    ray_adapter = _import_ray_adapter() if ray_address is not None else None
    inputs = find_inputs(input_path)
    kwargs = _client_kwargs(
        config,
        section,
        {
            "base_url": base_url,
            "model": model,
            "api_key": api_key,
            "dimensions": dimensions,
            "batch_size": batch_size,
            "cache": cache,
            "max_concurrency": max_concurrency,
        },
    )
    settings = JobSettings(
        column=column,
        output_column=output_column,
        role=role,  # type: ignore[arg-type]
        on_bad_row=on_bad_row,  # type: ignore[arg-type]
        part_rows=part_rows,
        mode="local" if ray_adapter is None else "ray",
    )
    # --metrics-port / --otel observe this process's client (with --ray: the driver's).
    observed = click.get_current_context().with_resource(
        observing(metrics_port, metrics_host, otel)
    )
    with EmbeddingClient(**kwargs, **observed) as client:
        progress = _Progress(quiet)
        job = EmbedJob(inputs, output, settings, client, on_rows=progress.advance)
        progress.start(job.total_rows, job.done_rows)
        try:
            if ray_adapter is None:
                result = job.run()
            else:
                result = _run_on_ray(
                    job, ray_adapter, ray_address, kwargs, ray_actors, ray_batch_size
                )
        finally:
            progress.close()
    click.echo(
        f"embedded {result.rows} rows into {output} ({result.written_parts} part(s) written, "
        f"{result.skipped_parts} already done"
        + (f", {result.dropped} bad row(s) dropped" if result.dropped else "")
        + f"); manifest: {output / MANIFEST}",
        err=True,
    )


def _run_on_ray(
    job: EmbedJob,
    adapter: Any,
    address: str | None,
    client_kwargs: dict[str, Any],
    actors: int,
    batch_size: int | None,
) -> Any:
    import ray
    import ray.data

    started = not ray.is_initialized()
    if started:
        ray.init(address=address or None, log_to_driver=False)
    options = dict(client_kwargs)
    base_url = options.pop("base_url", None)
    if "batch_size" in options:
        options["request_batch_size"] = options.pop("batch_size")
    extra = {"batch_size": batch_size} if batch_size else {}
    s = job.settings

    def read(path: Path) -> Any:
        if path.suffix.lower() in (".parquet", ".pq"):
            return ray.data.read_parquet(str(path))
        return ray.data.read_json(str(path), lines=True)

    def embed(ds: Any) -> Any:
        return adapter.embed_dataset(
            ds,
            s.column,
            s.output_column,
            base_url=base_url,
            concurrency=actors,
            role=s.role,
            on_bad_row=s.on_bad_row,
            **extra,
            **options,
        )

    try:
        return job.run_ray(embed, read)
    finally:
        if started:
            ray.shutdown()


class _Progress:
    """tqdm bar: rows done, rate and ETA (on stderr; off with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._bar: Any = None

    def start(self, total: int, done: int) -> None:
        if self._quiet:
            return
        from tqdm import tqdm

        if done:
            click.echo(f"resuming: {done}/{total} rows already embedded", err=True)
        self._bar = tqdm(
            total=total,
            initial=done,
            unit="row",
            desc="embedding",
            dynamic_ncols=True,
            file=sys.stderr,
            mininterval=1.0,
        )

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
