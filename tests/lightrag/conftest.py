"""LightRAG (lightrag-hku 1.5) through the nano-vectordb adapter: fake servers over real
HTTP on 127.0.0.1, and the live vLLM servers of :mod:`vllm_embed_testing.vllm`."""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.vllm import (  # noqa: F401 (session fixtures)
    vllm_matryoshka_server,
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)
