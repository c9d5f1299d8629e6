"""One settings table, one resolver: the constructor and ``load_config`` agree on every
environment variable, and both twins take the same typed settings."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest

from vllm_embed import (
    AsyncEmbeddingClient,
    ConfigValueError,
    EmbedConfig,
    EmbeddingClient,
    RetryPolicy,
    Secret,
    load_config,
)
from vllm_embed._base import BaseEmbeddingClient
from vllm_embed._config_readers._keys import SETTING_KEYS
from vllm_embed._options import HttpT
from vllm_embed._settings import ENV_VAR_NAMES, SETTING_FIELDS, SETTING_TABLE

TWINS = [EmbeddingClient, AsyncEmbeddingClient]
URL = "http://vllm.test:8000/v1"

#: A valid value for every variable in the table (a new variable must add one here).
SAMPLES = {
    "VLLM_EMBED_BASE_URL": "http://a.test:1/v1,http://b.test:2/v1",
    "OPENAI_BASE_URL": "http://openai-base.test/v1",
    "OPENAI_API_BASE": "http://openai-api-base.test/v1",
    "VLLM_EMBED_API_KEY": "sk-ours",
    "VLLM_API_KEY": "sk-vllm",
    "OPENAI_API_KEY": "sk-openai",
    "VLLM_EMBED_MODEL": "env-model",
    "VLLM_EMBED_DIMENSION": "384",
    "VLLM_EMBED_DIMENSIONS": "256",
    "VLLM_EMBED_TIMEOUT": "7.5",
    "VLLM_EMBED_RETRIES": "2",
    "VLLM_EMBED_BACKOFF_FACTOR": "1.5",
    "VLLM_EMBED_BATCH_SIZE": "16",
    "VLLM_EMBED_MAX_CONCURRENCY": "3",
    "VLLM_EMBED_CACHE": "/tmp/vllm-embed-test-settings-cache.sqlite",
    # on needs the optional packages (tests/telemetry); off must be read the same by both
    "VLLM_EMBED_TRACING": "off",
    "VLLM_EMBED_METRICS": "0",
    "VLLM_EMBED_MAX_IN_FLIGHT_PER_ENDPOINT": "4",
    "VLLM_EMBED_HEDGE": "0.02",
}

#: A value of each variable that both must refuse.
BAD = {
    "VLLM_EMBED_BASE_URL": "not a url",
    "OPENAI_BASE_URL": "ftp://x",
    "OPENAI_API_BASE": "localhost",
    "VLLM_EMBED_MODEL": None,  # any non-empty string is a model name
    "VLLM_EMBED_DIMENSIONS": "0",
    "VLLM_EMBED_TIMEOUT": "-1",
    "VLLM_EMBED_RETRIES": "many",
    "VLLM_EMBED_BACKOFF_FACTOR": "-2",
    "VLLM_EMBED_BATCH_SIZE": "1.5",
    "VLLM_EMBED_MAX_CONCURRENCY": "0",
    "VLLM_EMBED_TRACING": "maybe",
    "VLLM_EMBED_METRICS": "2",
    "VLLM_EMBED_MAX_IN_FLIGHT_PER_ENDPOINT": "0",
    "VLLM_EMBED_HEDGE": "sometimes",
}


def _observed(client: EmbeddingClient | AsyncEmbeddingClient) -> dict[str, Any]:
    """What a client ended up with, for every setting the environment can set."""
    return {
        "base_urls": client.base_urls,
        "api_key": client._api_key,
        "model": client._model,
        "dimensions": client._dimensions,
        "timeout": client._timeout,
        "retry": client.retry_policy,
        "batch_size": client._batch_size,
        "max_concurrency": client._max_concurrency,
        "cache": client.cache.location if client.cache is not None else None,
        "telemetry": client._telemetry,
        "max_in_flight_per_endpoint": client._pool.max_in_flight,
        "hedge": client._hedge_setting,
    }


def _close(client: EmbeddingClient | AsyncEmbeddingClient) -> None:
    if isinstance(client, EmbeddingClient):
        client.close()
    else:  # closes what it owns (a cache's SQLite connections: Python 3.13 warns otherwise)
        asyncio.run(client.aclose())


def test_every_variable_of_the_table_has_a_sample() -> None:
    assert set(SAMPLES) == set(ENV_VAR_NAMES)
    assert len(ENV_VAR_NAMES) == len(set(ENV_VAR_NAMES))


@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("var", sorted(ENV_VAR_NAMES))
def test_constructor_and_load_config_agree(
    var: str, cls: type[EmbeddingClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(var, SAMPLES[var])
    if "BASE" not in var:  # load_config needs a URL; the constructor must then agree on it
        monkeypatch.setenv("VLLM_EMBED_BASE_URL", URL)
    direct = cls()
    via_config = cls(**load_config().client_kwargs())
    via_from_config = cls.from_config()
    try:
        assert _observed(direct) == _observed(via_config) == _observed(via_from_config)
    finally:
        for client in (direct, via_config, via_from_config):
            _close(client)


def test_the_environment_sets_what_the_table_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("VLLM_EMBED_BASE_URL", "VLLM_EMBED_API_KEY", *SAMPLES):
        if var.startswith("VLLM_EMBED_"):
            monkeypatch.setenv(var, SAMPLES[var])
    with EmbeddingClient() as client:
        seen = _observed(client)
    assert seen["base_urls"] == ("http://a.test:1/v1", "http://b.test:2/v1")  # comma = two
    assert seen["api_key"] == Secret("sk-ours")
    assert seen["model"] == "env-model"
    assert seen["dimensions"] == 256
    assert seen["timeout"].total == 7.5
    assert seen["retry"] == RetryPolicy(max_attempts=3, backoff_factor=1.5)
    assert (seen["batch_size"], seen["max_concurrency"]) == (16, 3)
    assert (seen["max_in_flight_per_endpoint"], seen["hedge"]) == (4, 0.02)


def test_openai_api_base_is_honoured_below_openai_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://old.test/v1")
    with EmbeddingClient() as client:
        assert client.base_urls == ("http://old.test/v1",)
    assert load_config().base_urls == ("http://old.test/v1",)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://new.test/v1")
    with EmbeddingClient() as client:
        assert client.base_urls == ("http://new.test/v1",)


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SAMPLES:
        monkeypatch.setenv(var, SAMPLES[var])
    retry = RetryPolicy.none()
    with EmbeddingClient(
        URL, api_key="k", model="m", timeout=3, retry=retry, batch_size=5, max_concurrency=2
    ) as client:
        seen = _observed(client)
    assert seen["base_urls"] == (URL,)
    assert seen["api_key"] == Secret("k")
    assert seen["model"] == "m"
    assert seen["retry"] is retry
    assert (seen["timeout"].total, seen["batch_size"], seen["max_concurrency"]) == (3.0, 5, 2)


def test_an_explicit_argument_skips_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_EMBED_BATCH_SIZE", "zero")
    with EmbeddingClient(URL, batch_size=4) as client:
        assert client._batch_size == 4


@pytest.mark.parametrize("var", sorted(v for v, bad in BAD.items() if bad is not None))
def test_both_refuse_the_same_bad_values(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(var, BAD[var])
    if "BASE" not in var:
        monkeypatch.setenv("VLLM_EMBED_BASE_URL", URL)
    with pytest.raises(ConfigValueError, match=var) as from_client:
        EmbeddingClient()
    with pytest.raises(ConfigValueError, match=var) as from_config:
        load_config()
    assert str(from_client.value) == str(from_config.value)


def test_from_config_takes_a_section(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        '[one.embedder]\nbase_url = "http://one.test/v1"\nmodel = "m1"\n'
        '[two.embedder]\nbase_url = "http://two.test/v1"\nmodel = "m2"\n'
    )
    for cls in TWINS:
        client = cls.from_config(path, section="two.embedder", batch_size=3)
        try:
            assert client.base_urls == ("http://two.test/v1",)
            assert (client._model, client._batch_size) == ("m2", 3)
        finally:
            _close(client)


# ---------------------------------------------------------------------------------------
# typed constructor: both twins list every setting, with the same names, kinds and defaults


def _settings_of(cls: type) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self")
    params.pop("http_client", None)
    return params


def test_no_twin_hides_settings_in_kwargs() -> None:
    for cls in (*TWINS, BaseEmbeddingClient):
        kinds = {p.kind for p in inspect.signature(cls.__init__).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, cls
        assert inspect.Parameter.VAR_POSITIONAL not in kinds, cls


def test_both_twins_accept_the_same_settings_as_the_base() -> None:
    base = _settings_of(BaseEmbeddingClient)
    for cls in TWINS:
        twin = _settings_of(cls)
        assert list(twin) == list(base), cls
        for name, param in base.items():
            assert twin[name].kind == param.kind, (cls, name)
            assert twin[name].default == param.default, (cls, name)
            assert twin[name].annotation == param.annotation, (cls, name)


def test_the_twins_differ_only_in_their_http_client_type() -> None:
    # One keyword list (the base's); each twin fills in its httpx client type.
    for cls, name in ((EmbeddingClient, "httpx.Client"), (AsyncEmbeddingClient, "AsyncClient")):
        shown = inspect.signature(cls).parameters["http_client"].annotation
        assert name in shown and "HttpT" not in shown, (cls, shown)
    hint = typing.get_type_hints(BaseEmbeddingClient.__init__)["http_client"]
    assert typing.get_args(hint)[0] is HttpT
    sync = typing.get_args(EmbeddingClient.__orig_bases__[0])  # type: ignore[attr-defined]
    asyn = typing.get_args(AsyncEmbeddingClient.__orig_bases__[0])  # type: ignore[attr-defined]
    assert (sync, asyn) == ((httpx.Client,), (httpx.AsyncClient,))


def test_every_client_setting_of_the_table_is_a_parameter() -> None:
    names = set(_settings_of(EmbeddingClient))
    for setting in SETTING_TABLE:
        if setting.client is not None:
            assert setting.client in names, setting


def test_setting_fields_and_file_keys_are_the_tables() -> None:
    """One table: the field names and the file spellings are read off it, in its order."""
    assert tuple(s.field for s in SETTING_TABLE) == SETTING_FIELDS
    assert len(set(SETTING_FIELDS)) == len(SETTING_FIELDS)
    assert SETTING_KEYS[0] == "base_url" and SETTING_FIELDS[0] == "base_urls"
    assert SETTING_KEYS[1:] == SETTING_FIELDS[1:]
    config_fields = {f.name for f in dataclasses.fields(EmbedConfig)}
    assert set(SETTING_FIELDS) <= config_fields, set(SETTING_FIELDS) - config_fields


def test_every_parameter_is_documented_once_on_the_base() -> None:
    # cleandoc: Python 3.13 strips docstrings' indentation at compile time, older ones keep it
    doc = inspect.cleandoc(BaseEmbeddingClient.__doc__ or "")
    for name in _settings_of(BaseEmbeddingClient):
        assert f"\n    {name}: " in doc, name
