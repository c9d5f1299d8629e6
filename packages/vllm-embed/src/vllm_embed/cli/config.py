"""``vllm-embed config show`` and ``vllm-embed doctor``.

``config show [FILE]`` prints every resolved setting with the place it came from
(argument, environment variable, file and key, or default); API keys and credential-like
headers are masked (``*** (masked, N chars)``), never printed.

``doctor [FILE | --base-url URL]`` talks to the server through the core client's
discovery methods and prints one PASS / FAIL / WARN / SKIP line per check, each failure
with a fix: server reachable, API key accepted, model served, real dimension equals the
declared one (on mismatch: which store to migrate and the exact ``vllm-embed migrate``
command), max_model_len, and a timed round trip. Exit code 1 when any check fails.
"""

from __future__ import annotations

import json
import shlex
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from vllm_embed import _constants as C
from vllm_embed._config import EmbedConfig, load_config
from vllm_embed._config_readers._keys import SETTINGS
from vllm_embed._config_readers._mask import mask_tree, mask_url
from vllm_embed._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    DimensionsNotSupportedError,
    VLLMEmbedError,
)
from vllm_embed.cli._checks import Check

if TYPE_CHECKING:
    from vllm_embed._client import EmbeddingClient

__all__ = [
    "Check",
    "check_postgres_store",
    "check_store",
    "config",
    "doctor",
    "migrate_command",
    "run_checks",
]

ROUND_TRIP_TEXT = "vllm-embed doctor: round trip"

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


def _describe(origin: str) -> str:
    kind, _, detail = origin.partition(":")
    if kind == "file":
        path, _, key = detail.rpartition("#")
        return f"file {path} [{key}]" if path else f"file {detail}"
    if kind == "env":
        return f"env {detail}"
    return origin


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
        for n in SETTINGS
    ]
    width = max(len(r[0]) for r in rows) + 2
    value_width = min(max(len(r[1]) for r in rows) + 2, 60)
    for name, value, origin in rows:
        click.echo(f"  {name:<{width}}{value:<{value_width}}{_describe(origin)}")
    tables: list[tuple[str, Mapping[str, Any], str | None]] = [
        ("vector", cfg.vector, cfg.origins.get("vector", "default")),
        ("extra", cfg.extra, None),
    ]
    for title, table, table_origin in tables:
        if not table:
            continue
        where = f" (from {_describe(table_origin)})" if table_origin else ""
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


# -------------------------------------------------------------------------- doctor


@dataclass
class _Probe:
    """What the checks learned so far about one endpoint (each asked once)."""

    reachable: bool = False
    models: list[str] | None = None
    model: str | None = None


def _config_hint(cfg: EmbedConfig, field: str) -> str:
    """Where the user should change ``field``: the file and key, or the option."""
    origin = cfg.origins.get(field, "default")
    if origin.startswith("file:"):
        return f"in {_describe(origin)}"
    if origin.startswith("env:"):
        return f"in the environment variable {origin[4:]}"
    if cfg.source and cfg.format != "env":
        return f"in {cfg.source}"
    option = "base-url" if field == "base_urls" else field.replace("_", "-")
    return f"with --{option}"


def migrate_command(
    cfg: EmbedConfig, *, section: str | None = None, store: str | None = None
) -> str:
    """The ``vllm-embed migrate`` command that re-embeds the app's store (or ``store``)."""
    parts = ["vllm-embed", "migrate", store or cfg.store_path or "<store>"]
    if cfg.source and cfg.format != "env":
        parts += ["--config", cfg.source]
        if section:
            parts += ["--section", section]
    else:
        parts += ["--base-url", cfg.base_urls[0]] if cfg.base_urls else []
        parts += ["--model", cfg.model] if cfg.model else []
    return " ".join(p if p == "<store>" else shlex.quote(p) for p in parts)


def _check_reachable(client: EmbeddingClient, url: str, probe: _Probe) -> Check:
    """GET /health (vLLM); servers without it (TEI, Ollama) count if /v1/models answers."""
    name = "server reachable"
    healthy = bool(client.health())  # never raises
    if not healthy:
        try:
            probe.models = [m.id for m in client.models()]
        except APIConnectionError as exc:
            return Check(
                name,
                "fail",
                f"GET /health and GET /v1/models failed: {exc}",
                "Start the server (vllm-embed serve MODEL, or python -m "
                "vllm.entrypoints.openai.api_server --runner pooling ...), check base_url's "
                "host and port, and that nothing blocks the connection.",
            )
        except APIError:
            pass  # it answered (e.g. 401): reachable; the key check says more
    version = _quiet(client.version)
    probe.reachable = True
    how = "GET /health OK" if healthy else "answers (no /health route)"
    return Check(name, "pass", f"{url}: {how}" + (f", vLLM {version}" if version else ""))


def _quiet(call: Callable[[], Any]) -> Any:
    """Call an informational discovery method; None when it fails."""
    try:
        return call()
    except VLLMEmbedError:
        return None


def _check_key(client: EmbeddingClient, cfg: EmbedConfig, probe: _Probe) -> Check:
    name = "API key accepted"
    try:
        if probe.models is None:
            probe.models = [m.id for m in client.models()]
    except AuthenticationError as exc:
        sent = "no key was sent" if cfg.api_key is None else "the key sent was refused"
        return Check(
            name,
            "fail",
            f"GET /v1/models answered {exc.status_code}: {sent}",
            f"Set api_key {_config_hint(cfg, 'api_key')} (or VLLM_EMBED_API_KEY / --api-key) "
            "to the server's --api-key value; ${VAR} in the file keeps it out of the file.",
        )
    except APIError as exc:
        return Check(
            name,
            "fail",
            f"GET /v1/models failed: {exc}",
            "Check that base_url ends in /v1 and points at an OpenAI-compatible embedding server.",
        )
    if cfg.api_key is None and "authorization" not in {h.lower() for h in cfg.headers}:
        return Check(name, "pass", "no key configured, and the server asks for none")
    return Check(name, "pass", "accepted (GET /v1/models)")


def _check_model(client: EmbeddingClient, cfg: EmbedConfig, probe: _Probe) -> Check:
    name = "model served"
    served = probe.models or []
    listing = ", ".join(repr(m) for m in served) or "nothing"
    if cfg.model is None:
        if len(served) == 1:
            probe.model = served[0]
            return Check(
                name,
                "pass",
                f"no model configured; the server's only model {served[0]!r} will be used",
            )
        return Check(
            name,
            "fail",
            f"no model configured and the server serves {listing}",
            f"Set model {_config_hint(cfg, 'model')} (or --model) to one of them.",
        )
    if cfg.model in served:
        probe.model = cfg.model
        return Check(name, "pass", f"{cfg.model!r} is served")
    return Check(
        name,
        "fail",
        f"{cfg.model!r} is not served; the server serves {listing}",
        f"Set model {_config_hint(cfg, 'model')} to one of those, or start the server with "
        f"--served-model-name {shlex.quote(cfg.model)}.",
    )


def _check_dimension(client: EmbeddingClient, cfg: EmbedConfig, section: str | None) -> Check:
    name = "dimension"
    try:
        real = int(client.dimension())
    except DimensionsNotSupportedError:
        return Check(
            name,
            "fail",
            f"the server refuses dimensions={cfg.dimensions}: the model is not loaded as "
            "Matryoshka",
            f"Remove dimensions {_config_hint(cfg, 'dimensions')}, or start vLLM with "
            "--hf-overrides '{\"is_matryoshka\": true}' if the model supports it.",
        )
    except APIError as exc:
        return Check(
            name,
            "fail",
            f"could not embed a probe text: {exc}",
            "Read the server log; the model must be served with --runner pooling.",
        )
    declared = cfg.dimension
    asked = f" (dimensions={cfg.dimensions} requested)" if cfg.dimensions else ""
    if declared is None:
        return Check(
            name,
            "warn",
            f"server produces {real}{asked}; the config declares none",
            f"Declare dimension = {real} {_config_hint(cfg, 'dimension')} to record "
            "what your store is built with.",
        )
    if declared == real:
        return Check(name, "pass", f"{real}{asked}, as declared")
    store = cfg.store_path
    which = f"the store at {store}" if store else "the store built with this config"
    return Check(
        name,
        "fail",
        f"the config declares {declared} but the server produces {real}{asked}: "
        f"{which} holds {declared}-dim vectors that new queries ({real}-dim) cannot search",
        f"Re-embed {which} with the served model: `{migrate_command(cfg, section=section)}`. "
        f"Or point base_url/model at the server that produces {declared}; change dimension "
        f"to {real} {_config_hint(cfg, 'dimension')} only after migrating.",
    )


def _check_max_model_len(client: EmbeddingClient) -> Check:
    name = "max_model_len"
    length = _quiet(client.max_model_len)
    if length is None:
        return Check(
            name,
            "warn",
            "the server does not report it",
            "Long inputs may be rejected; set truncate='end' (default) on the client.",
        )
    return Check(
        name, "pass", f"{length} tokens (longer inputs are truncated to {max(int(length) - 1, 1)})"
    )


def _check_round_trip(client: EmbeddingClient) -> Check:
    name = "round trip"
    start = time.perf_counter()
    try:
        vectors = client.embed([ROUND_TRIP_TEXT])
    except APIError as exc:
        return Check(
            name,
            "fail",
            f"embedding one text failed: {exc}",
            "Read the server log for the request; retry with VLLM_EMBED_TRACEBACK=1.",
        )
    elapsed_ms = (time.perf_counter() - start) * 1000
    return Check(name, "pass", f"1 text -> {tuple(vectors.shape)} in {elapsed_ms:.1f} ms")


def _skipped(names: tuple[str, ...], reason: str) -> list[Check]:
    return [Check(n, "skip", reason) for n in names]


def _doctor_client(cfg: EmbedConfig, url: str, timeout: float) -> EmbeddingClient:
    """The config's client for ``url`` with retries off and ``timeout`` per request (a dead
    server fails fast): what every doctor check talks through."""
    from vllm_embed._client import EmbeddingClient  # lazy: keeps --help fast
    from vllm_embed._types import RetryPolicy, Timeout

    return EmbeddingClient.from_config(
        cfg,
        base_url=url,
        retry=RetryPolicy.none(),
        timeout=Timeout(total=timeout, connect=min(timeout, C.DEFAULT_TIMEOUT_CONNECT)),
    )


def run_checks(
    cfg: EmbedConfig, *, timeout: float = 10.0, section: str | None = None
) -> list[Check]:
    """Run every doctor check against each of the config's base URLs, in order.

    Retries are off and ``timeout`` bounds each request, so a dead server fails fast.
    """
    checks: list[Check] = []
    for url in cfg.base_urls:
        with _doctor_client(cfg, url, timeout) as client:
            checks.extend(_endpoint_checks(client, mask_url(url), cfg, section))
    return checks


def _endpoint_checks(
    client: EmbeddingClient, url: str, cfg: EmbedConfig, section: str | None
) -> list[Check]:
    probe = _Probe()
    checks = [_check_reachable(client, url, probe)]
    later = ("API key accepted", "model served", "dimension", "max_model_len", "round trip")
    if not probe.reachable:
        return checks + _skipped(later, "server not reachable")
    checks.append(_check_key(client, cfg, probe))
    if probe.models is None:
        return checks + _skipped(later[1:], "no model list")
    checks.append(_check_model(client, cfg, probe))
    if probe.model is None:
        return checks + _skipped(later[2:], "no usable model")
    checks.append(_check_dimension(client, cfg, section))
    checks.append(_check_max_model_len(client))
    checks.append(_check_round_trip(client))
    return checks


#: Stored texts re-embedded by the probe of a store that records no embedding space.
PROBE_TEXTS = 8


def check_store(
    cfg: EmbedConfig,
    store_path: str,
    *,
    timeout: float = 10.0,
    section: str | None = None,
    allow_dangerous_deserialization: bool = False,
    collection: str | None = None,
) -> list[Check]:
    """Compare the embedding space a store was built in with the config's live server.

    The store's record (written by ``vllm-embed migrate``) when it has one: same space
    -> PASS, another model, dimension or instruction -> FAIL with the ``migrate``
    command. Without a record, a probe: a few stored texts are embedded again and
    compared with their stored vectors (cosine): same -> PASS, different -> FAIL, in
    between -> WARN with the figures.

    A store of several collections (a Chroma directory, LanceDB tables, Milvus Lite
    collections) is judged one collection at a time, one check each (``store space
    (collection NAME)``), unless ``collection`` names one: collections of one directory
    can be in different spaces. The store is read once; each collection keeps its own
    record and probe sample.
    """
    from vllm_embed._errors import StoreError
    from vllm_embed.migrate import PickleConsentError, open_store, read_sidecar, space_of_client
    from vllm_embed.migrate.chroma import ChromaStore
    from vllm_embed.migrate.lancedb import LanceDBStore
    from vllm_embed.migrate.milvus import MilvusLiteStore

    name = "store space" if collection is None else f"store space (collection {collection})"
    consent = allow_dangerous_deserialization
    parts: list[tuple[str | None, Any]] = []
    recorded = None
    try:
        store = open_store(
            store_path, allow_dangerous_deserialization=consent, collection=collection
        )
    except PickleConsentError as exc:
        recorded = read_sidecar(exc.index_path)
        consent = True
    except StoreError as exc:
        return [Check(name, "fail", f"cannot read {store_path}: {exc}", None)]
    else:
        if isinstance(store, ChromaStore | LanceDBStore | MilvusLiteStore) and (
            collection is not None or len(store.collections) > 1
        ):
            parts = [(v.selector, v) for v in store.collection_views()]
        else:
            parts = [(collection, store)]
    if not cfg.base_urls:
        return [Check(name, "skip", "no server configured")]
    with _doctor_client(cfg, cfg.base_urls[0], timeout) as client:
        try:
            live = space_of_client(client)
        except VLLMEmbedError as exc:
            return [Check(name, "fail", f"cannot ask the server for its space: {exc}")]
        if not parts:  # a FAISS pickle read without consent: its sidecar only
            fix_cmd = _store_migrate_command(cfg, store_path, section, consent, collection)
            if recorded is not None:
                return [_judge_recorded(name, store_path, recorded, live, fix_cmd)]
            return [
                Check(
                    name,
                    "warn",
                    f"{store_path} records no embedding space, and probing it needs its "
                    "pickle read",
                    "Re-run with --allow-dangerous-deserialization (only for a store you "
                    "trust) to compare a few stored vectors with the server's.",
                )
            ]
        return [
            _judge_part(
                client,
                name if label is None else f"store space (collection {label})",
                store_path,
                part,
                live,
                _store_migrate_command(cfg, store_path, section, consent, label),
            )
            for label, part in parts
        ]


def _judge_recorded(name: str, where: str, recorded: Any, live: Any, fix_cmd: str) -> Check:
    """A recorded space against the server's: PASS when equal, else FAIL with the fix."""
    diffs = recorded.differences(live)
    if not diffs:
        return Check(name, "pass", f"{where} was built in {live.describe()}")
    return Check(
        name,
        "fail",
        f"{where} was built in {recorded.describe()}; the server embeds in "
        f"{live.describe()} ({'; '.join(diffs)}): queries would be compared with "
        "vectors of another space",
        f"Re-embed the store with the served model: `{fix_cmd}` (or point the "
        f"config at the server for {recorded.model!r}).",
    )


def _judge_part(
    client: EmbeddingClient, name: str, where: str, part: Any, live: Any, fix_cmd: str
) -> Check:
    """One store (or one collection of it): its record, else a probe of stored vectors."""
    from vllm_embed.migrate import judge_probe

    recorded = part.recorded_space()
    if recorded is not None:
        return _judge_recorded(name, where, recorded, live, fix_cmd)
    sample = part.sample_vectors(PROBE_TEXTS)
    if sample is None:
        return Check(
            name,
            "warn",
            f"{where} records no embedding space and has no stored text to probe",
            f"Migrate it once to record the space: `{fix_cmd}`.",
        )
    texts, stored = sample
    if stored.shape[1] != live.dimension:
        return Check(
            name,
            "fail",
            f"{where} holds {stored.shape[1]}-dim vectors; the server produces "
            f"{live.dimension} ({live.model!r})",
            f"Re-embed the store with the served model: `{fix_cmd}`.",
        )
    try:
        fresh = client.embed_with_info(texts, kind="document").vectors
    except VLLMEmbedError as exc:
        return Check(name, "fail", f"the probe request failed: {exc}")
    verdict = judge_probe(stored, fresh)
    detail = f"{where} records no space; {verdict.describe()}"
    if verdict.verdict == "same":
        return Check(name, "pass", f"{detail}: the server's model {live.model!r} made it")
    if verdict.verdict == "different":
        return Check(
            name,
            "fail",
            f"{detail}: another model (or instruction) made this store, not {live.model!r}",
            f"Re-embed the store with the served model: `{fix_cmd}`.",
        )
    return Check(
        name,
        "warn",
        f"{detail}: cannot tell whether {live.model!r} made it",
        f"If the model changed, re-embed the store: `{fix_cmd}`.",
    )


def check_postgres_store(cfg: EmbedConfig, url: str, *, timeout: float = 10.0) -> list[Check]:
    """``--store postgresql://...``: one check per pgvector table (LangChain: per collection).

    The space recorded by ``vllm-embed migrate`` (column comment, ``vllm_embed_spaces``)
    against the server's, or a probe of a few stored rows when none is recorded.
    """
    from vllm_embed._errors import StoreError
    from vllm_embed.cli._postgres import store_checks

    if not cfg.base_urls:
        return [Check("store space", "skip", "no server configured")]
    with _doctor_client(cfg, cfg.base_urls[0], timeout) as client:
        try:
            return store_checks(url, client)
        except StoreError as exc:
            return [Check("store space", "fail", str(exc))]
        except VLLMEmbedError as exc:
            return [Check("store space", "fail", f"cannot ask the server for its space: {exc}")]


def _store_migrate_command(
    cfg: EmbedConfig,
    store_path: str,
    section: str | None,
    consent: bool,
    collection: str | None = None,
) -> str:
    command = migrate_command(cfg, section=section, store=store_path)
    if collection is not None:
        command += f" --collection {shlex.quote(collection)}"
    return command + (" --allow-dangerous-deserialization" if consent else "")


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
@click.option("--base-url", help="Server URL (…/v1); overrides the config's base_url.")
@click.option("--api-key", help="API key; prefer VLLM_EMBED_API_KEY (keeps it out of history).")
@click.option("--model", help="Model name; overrides the config's model.")
@click.option("--dimension", type=int, help="The dimension your store was built with.")
@click.option("--section", help="Dotted path of the settings table, e.g. pdf_knowledge.embedder.")
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
    "collection, one check each).",
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
    postgresql://USER@HOST:PORT/DB checks every pgvector table found the same way.

    FILE is a .toml / .json / .py config or a dotted module name (a Python config is
    executed to read it). Exit code 1 when any check fails.
    """
    if collection is not None and store is None:
        raise click.UsageError("--collection needs --store (the store holding the collection).")
    overrides = {"base_url": base_url, "api_key": api_key, "model": model, "dimension": dimension}
    cfg = _load(file, section, overrides)
    checks = run_checks(cfg, timeout=timeout, section=section)
    if store is not None:
        if all(c.status in ("pass", "warn") for c in checks) and store.startswith(
            ("postgresql://", "postgres://")
        ):
            found = check_postgres_store(cfg, store, timeout=timeout)
            if collection is not None:  # LangChain's per-collection checks end in [NAME]
                found = [c for c in found if c.name.endswith(f" [{collection}]")] or [
                    Check(
                        "store space",
                        "fail",
                        f"no LangChain collection {collection!r} in {mask_url(store)}",
                        "Run without --collection to see every table and collection.",
                    )
                ]
            checks.extend(found)
        elif all(c.status in ("pass", "warn") for c in checks):
            checks.extend(
                check_store(
                    cfg,
                    store,
                    timeout=timeout,
                    section=section,
                    allow_dangerous_deserialization=allow_dangerous_deserialization,
                    collection=collection,
                )
            )
        else:
            checks.append(Check("store space", "skip", "the server checks failed"))
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        _print_checks(cfg, checks)
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)
