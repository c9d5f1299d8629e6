"""The server checks of doctor: one config against each of its live endpoints.

Server reachable, API key accepted, model served, real dimension equals the declared one
(on mismatch: which store to migrate and the exact ``vllm-embed migrate`` command),
max_model_len, and a timed round trip; each failure carries its fix.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllm_embed import _constants as C
from vllm_embed._config import EmbedConfig
from vllm_embed._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    DimensionsNotSupportedError,
    VLLMEmbedError,
)
from vllm_embed._secrets import mask_url
from vllm_embed.doctor._checks import Check
from vllm_embed.doctor._fix import migrate_command

if TYPE_CHECKING:
    from vllm_embed._client import EmbeddingClient

__all__ = [
    "ROUND_TRIP_TEXT",
    "config_migrate_command",
    "describe_origin",
    "doctor_client",
    "run_checks",
]

ROUND_TRIP_TEXT = "vllm-embed doctor: round trip"


def describe_origin(origin: str) -> str:
    """A setting's origin (``file:PATH#KEY``, ``env:VAR``, ...) as the user reads it."""
    kind, _, detail = origin.partition(":")
    if kind == "file":
        path, _, key = detail.rpartition("#")
        return f"file {path} [{key}]" if path else f"file {detail}"
    if kind == "env":
        return f"env {detail}"
    return origin


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
        return f"in {describe_origin(origin)}"
    if origin.startswith("env:"):
        return f"in the environment variable {origin[4:]}"
    if cfg.source and cfg.format != "env":
        return f"in {cfg.source}"
    option = "base-url" if field == "base_urls" else field.replace("_", "-")
    return f"with --{option}"


def config_migrate_command(
    cfg: EmbedConfig,
    *,
    section: str | None = None,
    store: str | None = None,
    collection: str | None = None,
    allow_dangerous_deserialization: bool = False,
) -> str:
    """The ``vllm-embed migrate`` command that re-embeds the app's store (or ``store``)
    with the server ``cfg`` names: its file when it has one, else its URL and model."""
    from_file = bool(cfg.source and cfg.format != "env")
    return migrate_command(
        store or cfg.store_path,
        config=cfg.source if from_file else None,
        section=section,
        base_url=None if from_file or not cfg.base_urls else cfg.base_urls[0],
        model=None if from_file else cfg.model,
        collection=collection,
        allow_dangerous_deserialization=allow_dangerous_deserialization,
    )


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
    fix_cmd = config_migrate_command(cfg, section=section)
    which = f"the store at {store}" if store else "the store built with this config"
    return Check(
        name,
        "fail",
        f"the config declares {declared} but the server produces {real}{asked}: "
        f"{which} holds {declared}-dim vectors that new queries ({real}-dim) cannot search",
        f"Re-embed {which} with the served model: `{fix_cmd}`. "
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


def doctor_client(cfg: EmbedConfig, url: str, timeout: float) -> EmbeddingClient:
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
        with doctor_client(cfg, url, timeout) as client:
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
