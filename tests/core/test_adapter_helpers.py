"""The framework-free adapter helpers: settings -> client kwargs, config -> fields,
the list check before a batch call."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_embed import (
    InvalidInputError,
    RetryPolicy,
    adapter_client_kwargs,
    adapter_fields_from_config,
    is_empty_batch,
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


def test_is_empty_batch_for_lists() -> None:
    assert is_empty_batch([], caller="f") is True
    assert is_empty_batch(["a"], caller="f") is False
    assert is_empty_batch(("a", "b"), caller="f") is False


@pytest.mark.parametrize("bad", [None, "one text", b"bytes", {"a": 1}])
def test_is_empty_batch_names_the_caller_and_the_alternative(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        is_empty_batch(bad, caller="embed_documents", alternative="embed_query")
    message = str(info.value)
    assert "embed_documents expects a list of strings" in message
    assert type(bad).__name__ in message
    assert "or use embed_query" in message
