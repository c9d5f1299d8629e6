"""Precedence (arguments > our env > file > fallback env > defaults) and `origins`."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_embed._config import ENV_VARS, EmbedConfig, load_config
from vllm_embed._errors import ConfigValueError
from vllm_embed._types import RetryPolicy, Secret

FIXTURES = Path(__file__).parent / "fixtures"
KANO = FIXTURES / "kano_backlog_config.toml"


def test_env_beats_file_and_arguments_beat_env() -> None:
    env = {"VLLM_EMBED_MODEL": "env-model", "VLLM_EMBED_DIMENSION": "384"}
    cfg = load_config(KANO, env=env)
    assert (cfg.model, cfg.dimension) == ("env-model", 384)
    assert cfg.origins["model"] == "env:VLLM_EMBED_MODEL"
    assert cfg.origins["base_urls"] == f"file:{KANO}#embedding.base_url"
    cfg = load_config(KANO, env=env, overrides={"model": "arg-model"})
    assert cfg.model == "arg-model"
    assert cfg.origins["model"] == "argument"
    assert cfg.origins["dimension"] == "env:VLLM_EMBED_DIMENSION"


def test_fallback_variables_do_not_override_the_file() -> None:
    env = {"OPENAI_BASE_URL": "https://other.example/v1", "OPENAI_API_KEY": "sk-other"}
    cfg = load_config(KANO, env=env)
    assert cfg.base_urls == ("http://localhost:8000/v1",)
    assert cfg.api_key == Secret("dummy-key")


def test_our_variables_do_override_the_file() -> None:
    env = {"VLLM_EMBED_BASE_URL": "http://a:1/v1, http://b:2/v1/", "VLLM_EMBED_API_KEY": "k2"}
    cfg = load_config(KANO, env=env)
    assert cfg.base_urls == ("http://a:1/v1", "http://b:2/v1")
    assert cfg.api_key == Secret("k2")
    assert cfg.origins["api_key"] == "env:VLLM_EMBED_API_KEY"


def test_environment_only() -> None:
    env = {
        "VLLM_EMBED_BASE_URL": "http://e:1/v1",
        "VLLM_EMBED_TIMEOUT": "12.5",
        "VLLM_EMBED_BATCH_SIZE": "32",
        "VLLM_EMBED_MAX_CONCURRENCY": "2",
        "VLLM_EMBED_RETRIES": "0",
        "VLLM_EMBED_BACKOFF_FACTOR": "1.5",
        "VLLM_EMBED_DIMENSIONS": "128",
        "VLLM_API_KEY": "server-key",
    }
    cfg = load_config(env=env)
    assert cfg.format == "env" and cfg.source is None
    assert (cfg.timeout, cfg.batch_size, cfg.max_concurrency) == (12.5, 32, 2)
    assert cfg.dimensions == 128
    assert cfg.api_key == Secret("server-key")
    assert cfg.origins["api_key"] == "env:VLLM_API_KEY"
    assert cfg.retry_policy() == RetryPolicy(max_attempts=1, backoff_factor=1.5)
    assert set(ENV_VARS.values()) >= {"VLLM_EMBED_BASE_URL", "VLLM_EMBED_MODEL"}


def test_reads_os_environ_by_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("VLLM_EMBED_BASE_URL", "http://from-os:1/v1")
    assert load_config().base_urls == ("http://from-os:1/v1",)


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigValueError, match="environment variable VLLM_EMBED_DIMENSION"):
        load_config(KANO, env={"VLLM_EMBED_DIMENSION": "large"})
    with pytest.raises(ConfigValueError, match="VLLM_EMBED_BATCH_SIZE"):
        load_config(KANO, env={"VLLM_EMBED_BATCH_SIZE": "0"})


def test_empty_values_count_as_unset() -> None:
    cfg = load_config(KANO, env={"VLLM_EMBED_MODEL": "", "VLLM_EMBED_API_KEY": "  "})
    assert cfg.model == "BAAI/bge-large-zh-v1.5"
    assert cfg.api_key == Secret("dummy-key")


def test_none_overrides_are_ignored_unknown_ones_rejected() -> None:
    cfg = load_config(KANO, env={}, overrides={"model": None, "base_url": "http://o:1/v1"})
    assert cfg.model == "BAAI/bge-large-zh-v1.5"
    assert cfg.base_urls == ("http://o:1/v1",)
    with pytest.raises(ConfigValueError, match="Unknown setting 'modle'"):
        load_config(KANO, env={}, overrides={"modle": "x"})


def test_every_setting_has_an_origin() -> None:
    cfg = load_config(KANO, env={})
    assert set(cfg.origins) == {
        "base_urls",
        "api_key",
        "model",
        "dimension",
        "dimensions",
        "headers",
        "timeout",
        "retries",
        "backoff_factor",
        "batch_size",
        "max_concurrency",
        "cache",
        "tracing",
        "metrics",
        "max_in_flight_per_endpoint",
        "hedge",
        "vector",
    }


def test_an_embedconfig_source_takes_overrides_on_top() -> None:
    base = load_config(KANO, env={})
    cfg = load_config(base, overrides={"dimension": 384, "encoding": "float"})
    assert cfg.dimension == 384 and cfg.origins["dimension"] == "argument"
    assert cfg.model == base.model and cfg.origins["model"] == base.origins["model"]
    assert cfg.vector == base.vector
    assert cfg.client_kwargs()["encoding"] == "float"


def test_client_kwargs_build_a_client() -> None:
    from vllm_embed._client import EmbeddingClient

    cfg = load_config(FIXTURES / "pdf_kb_app.json", env={}, overrides={"batch_size": 16})
    kwargs = cfg.client_kwargs()
    assert kwargs["api_key"] == "your-api-key"  # plain str, the client wraps it
    with EmbeddingClient(**kwargs) as client:
        assert client.base_urls == ("http://your-gpu-cluster:8000/v1",)
        assert client.retry_policy.max_attempts == 4
        assert client._batch_size == 16


def test_from_config_on_the_core_client(clean_env: pytest.MonkeyPatch) -> None:
    from vllm_embed._client import EmbeddingClient

    with EmbeddingClient.from_config(str(KANO), model="other") as client:
        assert client.base_urls == ("http://localhost:8000/v1",)
        assert client._model == "other"


def test_empty_config_has_no_client_kwargs_beyond_base_url() -> None:
    cfg = EmbedConfig(base_urls=("http://x:1/v1",))
    assert cfg.client_kwargs() == {"base_url": "http://x:1/v1"}
