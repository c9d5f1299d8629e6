"""The framework-free adapter helpers: settings -> client kwargs, config -> fields,
the list check before a batch call, the lazy-clients mixin."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import vllm_embed
from vllm_embed import AsyncEmbeddingClient, EmbeddingClient, InvalidInputError, RetryPolicy
from vllm_embed.adapters import (
    API_KEY_ENV_VARS,
    BASE_URL_ENV_VARS,
    LazyClients,
    LazyClientsMixin,
    adapter_client_kwargs,
    adapter_fields_from_config,
    require_text_list,
)


class _Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value


def test_unset_settings_are_left_to_the_core() -> None:
    kwargs = adapter_client_kwargs(
        client_options={}, instructions="auto", headers={}, model=None, dimensions=None
    )
    assert kwargs == {"instructions": "auto"}


def test_named_settings_win_over_client_options() -> None:
    kwargs = adapter_client_kwargs(
        client_options={"timeout": 1.0, "model": "old", "proxy": "x"},
        instructions=None,
        base_url=["http://a/v1", "http://b/v1"],
        api_key=_Secret("sk-test-value"),
        headers={"X-A": "1"},
        timeout=5.0,
        model="new",
    )
    assert kwargs == {
        "instructions": None,
        "base_url": ["http://a/v1", "http://b/v1"],
        "api_key": "sk-test-value",
        "headers": {"X-A": "1"},
        "timeout": 5.0,
        "model": "new",
        "proxy": "x",
    }


def test_plain_string_api_key_is_passed_on() -> None:
    kwargs = adapter_client_kwargs(client_options={}, instructions="auto", api_key="k")
    assert kwargs["api_key"] == "k"


def test_max_retries_keeps_the_other_fields_of_a_given_retry_policy() -> None:
    base = RetryPolicy(max_attempts=9, initial_delay=0.25)
    kwargs = adapter_client_kwargs(
        client_options={"retry": base}, instructions="auto", max_retries=2
    )
    assert kwargs["retry"] == RetryPolicy(max_attempts=3, initial_delay=0.25)
    default = adapter_client_kwargs(client_options={}, instructions="auto", max_retries=0)
    assert default["retry"].max_attempts == 1


def test_fields_from_config_split_fields_renames_and_options(tmp_path: Path) -> None:
    path = tmp_path / "embed.toml"
    path.write_text(
        'base_url = "http://127.0.0.1:9/v1"\nmodel = "m"\nbatch_size = 8\ntimeout = 3.0\n'
    )
    fields = adapter_fields_from_config(
        path,
        section=None,
        fields={"base_url", "model_name", "client_options"},
        overrides={"client_options": {"proxy": "p"}, "model_name": "override"},
        renames={"model": "model_name"},
    )
    assert fields["base_url"] == "http://127.0.0.1:9/v1"
    assert fields["model_name"] == "override"
    assert fields["client_options"]["batch_size"] == 8
    assert fields["client_options"]["timeout"] == 3.0
    assert fields["client_options"]["proxy"] == "p"
    assert "model" not in fields["client_options"]


def test_require_text_list_returns_the_texts() -> None:
    empty: list[str] = []
    assert require_text_list(empty, caller="f") is empty
    texts = ("a", "b")
    assert require_text_list(texts, caller="f") is texts
    assert not require_text_list([], caller="f")


@pytest.mark.parametrize("bad", [None, "one text", b"bytes", {"a": 1}])
def test_require_text_list_names_the_caller_and_the_alternative(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        require_text_list(bad, caller="embed_documents", alternative="embed_query")
    message = str(info.value)
    assert "embed_documents expects a list of strings" in message
    assert type(bad).__name__ in message
    assert "or use embed_query" in message


class _Settings(LazyClientsMixin):
    """A framework-free adapter: plain attributes, the mixin's clients."""

    def __init__(self, **client_options: Any) -> None:
        self._clients = LazyClients()
        self.client_options = client_options
        self.instructions = None
        self.base_url = "http://127.0.0.1:9/v1"
        self.api_key = _Secret("sk-test-value")
        self.headers = None
        self.timeout = 2.0
        self.max_retries = 0
        self.model = "m"

    def _client_settings(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": None}


def test_mixin_builds_the_client_from_the_settings_read_at_build_time() -> None:
    settings = _Settings(batch_size=3)
    settings.model = "changed-before-use"
    assert settings._client_kwargs() == {
        "batch_size": 3,
        "instructions": None,
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-test-value",
        "timeout": 2.0,
        "retry": RetryPolicy(max_attempts=1),
        "model": "changed-before-use",
    }
    client = settings.client
    assert isinstance(client, EmbeddingClient)
    assert settings.client is client
    settings.close()
    assert settings.client is not client
    settings.close()


async def test_mixin_async_client_is_per_loop_and_closes() -> None:
    settings = _Settings()
    client = settings.async_client
    assert isinstance(client, AsyncEmbeddingClient)
    assert settings.async_client is client
    await settings.aclose()
    assert settings.async_client is not client
    await settings.aclose()


class _Renamed(LazyClientsMixin):
    """Fields found from the constructor's parameters; one renamed config key."""

    _config_renames = MappingProxyType({"model": "model_name"})

    def __init__(
        self,
        model_name: str | None = None,
        base_url: str | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.base_url = base_url
        self.client_options = client_options or {}


def test_mixin_from_config_fills_constructor_parameters(tmp_path: Path) -> None:
    path = tmp_path / "embed.toml"
    path.write_text('base_url = "http://127.0.0.1:9/v1"\nmodel = "m"\nbatch_size = 8\n')
    built = _Renamed.from_config(path, base_url="http://127.0.0.1:10/v1")
    assert isinstance(built, _Renamed)
    assert built.model_name == "m"
    assert built.base_url == "http://127.0.0.1:10/v1"
    assert built.client_options == {"batch_size": 8}


def test_adapter_helpers_live_in_the_public_adapters_module_only() -> None:
    """Integration authors import them from vllm_embed.adapters; the top level is for users."""
    for name in vllm_embed.adapters.__all__:
        assert not hasattr(vllm_embed, name), name
    assert API_KEY_ENV_VARS[0] == "VLLM_EMBED_API_KEY"
    assert BASE_URL_ENV_VARS[0] == "VLLM_EMBED_BASE_URL"


def test_no_adapter_imports_a_private_core_name() -> None:
    """The adapters use only the core's public modules (vllm_embed, vllm_embed.adapters)."""
    import re

    root = Path(__file__).resolve().parents[2] / "packages"
    sources = sorted(root.glob("vllm-embed-*/src/**/*.py"))
    assert sources, root
    # the core's vllm_embed._x, not an adapter's own private module (...vllm_embed._settings
    # under haystack_integrations)
    private = re.compile(r"^\s*(from|import)\s+vllm_embed\._|(?<![\w.])vllm_embed\._\w", re.M)
    offenders = [str(p.relative_to(root)) for p in sources if private.search(p.read_text())]
    assert offenders == []


def test_arrow_helpers_do_not_import_pyarrow_until_used() -> None:
    """vllm_embed.adapters exports the Arrow helpers of the embed job (Ray Data uses them);
    importing it must not import pyarrow (an optional extra)."""
    import subprocess
    import sys

    code = (
        "import sys, vllm_embed, vllm_embed.adapters as a; "
        "assert callable(a.vectors_to_arrow) and callable(a.bad_row_error); "
        "print('pyarrow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_bad_row_error_names_the_row_and_the_way_out() -> None:
    from vllm_embed import InvalidRowError
    from vllm_embed.adapters import bad_row_error

    err = bad_row_error({"id": 7, "text": None, "blob": "x" * 500}, "text", location="row 3")
    assert isinstance(err, InvalidRowError)
    assert err.column == "text" and err.location == "row 3"
    assert err.row["blob"] == "x" * 60 + "…"  # long values are cut in the message and row
    assert "no text" in str(err) and "on_bad_row='drop'" in str(err)
