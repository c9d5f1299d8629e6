"""LangChain's own standard unit suite (PyPI ``langchain-tests``), sockets disabled."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests

from vllm_embed_langchain import VLLMEmbeddings


class TestVLLMEmbeddingsStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": "http://vllm.test/v1", "model": "fake-model"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"VLLM_EMBED_API_KEY": "sk-from-env"},
            {"base_url": "http://vllm.test/v1", "model": "fake-model"},
            {"api_key": "sk-from-env"},
        )
