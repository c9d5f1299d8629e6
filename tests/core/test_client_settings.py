"""Constructor settings are validated with clear errors; from_config builds a client."""

from __future__ import annotations

import pytest

from vllm_embed import (
    AsyncEmbeddingClient,
    ConfigValueError,
    EmbedConfig,
    EmbeddingClient,
    RetryPolicy,
    Secret,
    Timeout,
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"max_tokens_per_request": 0}, "max_tokens_per_request"),
        ({"dimensions": 0}, "dimensions"),
        ({"embed_dtype": "int8"}, "embed_dtype"),
        ({"truncate": "start"}, "truncate"),
        ({"instructions": "e6"}, "Unknown instructions preset"),
        ({"model": ""}, "model"),
        ({"retry": 3}, "RetryPolicy"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigValueError, match=match):
        EmbeddingClient("http://h/v1", **kwargs)  # type: ignore[arg-type]


def test_no_base_url() -> None:
    with pytest.raises(ConfigValueError, match="VLLM_EMBED_BASE_URL"):
        EmbeddingClient()
    with pytest.raises(ConfigValueError, match="VLLM_EMBED_BASE_URL"):
        AsyncEmbeddingClient()


def test_several_base_urls() -> None:
    c = EmbeddingClient(["http://a:1", "http://b:2/v1/"])
    assert c.base_urls == ("http://a:1/v1", "http://b:2/v1")


def test_from_config_with_an_embed_config() -> None:
    cfg = EmbedConfig(
        base_urls=("http://gpu-1:8000/v1", "http://gpu-2:8000/v1"),
        api_key=Secret("k"),
        model="Qwen/Qwen3-Embedding-0.6B",
        batch_size=16,
        max_concurrency=8,
    )
    c = EmbeddingClient.from_config(cfg, retry=RetryPolicy(max_attempts=2), timeout=Timeout(5, 1))
    assert c.base_urls == ("http://gpu-1:8000/v1", "http://gpu-2:8000/v1")
    assert c._model == "Qwen/Qwen3-Embedding-0.6B"
    assert c._batch_size == 16 and c._max_concurrency == 8
    assert c.retry_policy.max_attempts == 2
    assert c._headers["Authorization"] == "Bearer k"


def test_from_config_toml_with_overrides(tmp_path) -> None:
    path = tmp_path / "embed.toml"
    path.write_text(
        '[embedding]\nbase_url = "http://box:8000/v1"\nmodel = "bge"\nbatch_size = 8\n',
        encoding="utf-8",
    )
    c = AsyncEmbeddingClient.from_config(str(path), model="e5", max_tokens_per_request=1000)
    assert c.base_urls == ("http://box:8000/v1",)
    assert c._model == "e5"
    assert c._batch_size == 8
    assert c._max_tokens == 1000


def test_from_config_with_an_embed_config_validates_overrides() -> None:
    """An EmbedConfig source goes through load_config: overrides are coerced and checked."""
    cfg = EmbedConfig(base_urls=("http://a:8000/v1",), api_key=None, model="m")
    c = EmbeddingClient.from_config(cfg, batch_size="32", model="n")
    assert c._batch_size == 32
    assert c._model == "n"
    with pytest.raises(ConfigValueError, match="dimension from the arguments"):
        EmbeddingClient.from_config(cfg, dimension=-1)
    with pytest.raises(ConfigValueError, match="Unknown setting 'bogus'"):
        EmbeddingClient.from_config(cfg, bogus=1)
