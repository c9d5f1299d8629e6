"""The environment variables vllm-embed reads, and where they sit in the precedence.

``ENV_VARS`` (ours) override the config file. ``FALLBACK_ENV_VARS`` are other tools'
variables (the OpenAI SDK's, vLLM's server key) and are used only when neither the
arguments, our variables nor the file set the field: a global ``OPENAI_BASE_URL`` meant
for another tool must not redirect an app whose config file names its own server.
"""

from __future__ import annotations

__all__ = ["ENV_VARS", "FALLBACK_ENV_VARS"]

# field -> our variable (overrides the file)
ENV_VARS: dict[str, str] = {
    "base_urls": "VLLM_EMBED_BASE_URL",  # several: comma-separated
    "api_key": "VLLM_EMBED_API_KEY",
    "model": "VLLM_EMBED_MODEL",
    "dimension": "VLLM_EMBED_DIMENSION",
    "dimensions": "VLLM_EMBED_DIMENSIONS",
    "timeout": "VLLM_EMBED_TIMEOUT",
    "retries": "VLLM_EMBED_RETRIES",
    "backoff_factor": "VLLM_EMBED_BACKOFF_FACTOR",
    "batch_size": "VLLM_EMBED_BATCH_SIZE",
    "max_concurrency": "VLLM_EMBED_MAX_CONCURRENCY",
}

# field -> other tools' variables, first set wins (used below the file)
FALLBACK_ENV_VARS: dict[str, tuple[str, ...]] = {
    "base_urls": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "api_key": ("VLLM_API_KEY", "OPENAI_API_KEY"),
}
