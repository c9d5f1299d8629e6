"""JSON configs like a PDF knowledge base's: an `embedder` object inside a larger app config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vllm_embed._config import UnknownConfigKeyWarning, load_config
from vllm_embed._errors import ConfigFileError, ConfigValueError
from vllm_embed._types import RetryPolicy, Secret

FIXTURES = Path(__file__).parent / "fixtures"


def test_embedder_with_all_options_inside_an_app_config() -> None:
    path = FIXTURES / "pdf_kb_app.json"
    cfg = load_config(path, env={})
    assert cfg.format == "json"
    assert cfg.base_urls == ("http://your-gpu-cluster:8000/v1",)
    assert cfg.model == "your-embedding-model"
    assert cfg.api_key == Secret("your-api-key")
    assert cfg.headers == {"Authorization": "Bearer your-token", "X-Custom-Header": "value"}
    assert (cfg.timeout, cfg.retries, cfg.backoff_factor) == (60.0, 3, 2.0)
    assert cfg.extra == {"type": "custom"}
    assert cfg.origins["retries"] == f"file:{path}#pdf_knowledge.embedder.retries"


def test_retries_and_backoff_map_onto_the_retry_policy() -> None:
    cfg = load_config(FIXTURES / "pdf_kb_app.json", env={})
    kwargs = cfg.client_kwargs()
    assert kwargs["retry"] == RetryPolicy(max_attempts=4, backoff_factor=2.0)
    assert kwargs["timeout"] == 60.0
    assert kwargs["headers"]["X-Custom-Header"] == "value"


def test_explicit_authorization_header_wins_over_api_key() -> None:
    """Both reach the client; the client sends the header, not `Bearer <api_key>`."""
    from vllm_embed._client import EmbeddingClient

    cfg = load_config(FIXTURES / "pdf_kb_app.json", env={})
    client = EmbeddingClient(**cfg.client_kwargs())
    try:
        assert client._headers["Authorization"] == "Bearer your-token"
        assert client._headers["X-Custom-Header"] == "value"
    finally:
        client.close()


def test_seed_fragment_without_outer_braces_is_read_as_shown() -> None:
    cfg = load_config(FIXTURES / "pdf_kb_fragment.json", env={})
    assert cfg.model == "your-embedding-model"
    assert cfg.timeout == 60.0
    assert cfg.origins["model"].endswith("#pdf_knowledge.embedder.model")


def test_embedder_fragment_and_top_level_object() -> None:
    fragment = load_config(FIXTURES / "embedder_vllm.json", env={})
    assert fragment.base_urls == ("http://localhost:8000/v1",)
    assert fragment.origins["base_urls"].endswith("#embedder.base_url")
    top = load_config(FIXTURES / "embedder_toplevel.json", env={})
    assert top.timeout == 30.0
    assert top.origins["timeout"].endswith("#timeout")


def test_explicit_section_path(tmp_path: Path) -> None:
    doc = {
        "search": {"embedder": {"base_url": "http://a:1/v1"}},
        "ingest": {"embedder": {"base_url": "http://b:1/v1"}},
    }
    path = tmp_path / "app.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigValueError, match=r"Several embedding sections.*section="):
        load_config(path, env={})
    cfg = load_config(path, section="ingest.embedder", env={})
    assert cfg.base_urls == ("http://b:1/v1",)


def test_shallowest_embedder_wins(tmp_path: Path) -> None:
    doc = {
        "embedder": {"base_url": "http://top:1/v1"},
        "legacy": {"embedder": {"base_url": "http://deep:1/v1"}},
    }
    path = tmp_path / "app.json"
    path.write_text(json.dumps(doc))
    assert load_config(path, env={}).base_urls == ("http://top:1/v1",)


# A trailing comma: Python 3.13's json points at the comma itself ("Illegal trailing comma
# before end of object"), older versions at the closing bracket after it.
TRAILING_COMMA_AT = (3, 30) if sys.version_info >= (3, 13) else (4, 3)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{\n  "embedder": {\n    "base_url": "http://x/v1",\n  }\n}\n', *TRAILING_COMMA_AT),
        ('{\n  "embedder": {"model": \'m\'}\n}', 2, 25),
        ('{"embedder": {"model": "m"}', 1, 28),
    ],
)
def test_json_syntax_errors_give_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    path = tmp_path / "app.json"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as info:
        load_config(path, env={})
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.path == str(path)
    assert f"line {line}, column {column}" in str(info.value)


def test_fragment_syntax_error_positions_refer_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fragment.json"
    path.write_text('"pdf_knowledge": {\n  "embedder": {\n    "model": "m",,\n  }\n}\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(path, env={})
    assert info.value.line == 3
    assert path.read_text().splitlines()[2][info.value.column - 1] == ","


def test_top_level_array_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigFileError, match="not an object"):
        load_config(path, env={})


def test_bad_values_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"embedder": {"base_url": "http://a:1/v1", "timeout": -1}}))
    with pytest.raises(ConfigValueError, match=r"'embedder.timeout'.*positive number"):
        load_config(path, env={})
    path.write_text(json.dumps({"embedder": {"base_url": "http://a:1/v1", "headers": ["x"]}}))
    with pytest.raises(ConfigValueError, match="headers"):
        load_config(path, env={})


def test_unknown_key_warns(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"embedder": {"base_url": "http://a:1/v1", "cache_ttl": 5}}))
    with pytest.warns(UnknownConfigKeyWarning, match="cache_ttl"):
        cfg = load_config(path, env={})
    assert cfg.extra["cache_ttl"] == 5


def test_json_without_suffix_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "embedder.conf"
    path.write_text(json.dumps({"embedder": {"base_url": "http://a:1/v1"}}))
    assert load_config(path, env={}).format == "json"


def test_env_references_inside_headers(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    embedder = {"base_url": "http://a:1/v1", "headers": {"Authorization": "Bearer ${TOKEN}"}}
    path.write_text(json.dumps({"pdf_knowledge": {"embedder": embedder}}))
    cfg = load_config(path, env={"TOKEN": "tok-9q7zX"})
    assert cfg.headers == {"Authorization": "Bearer tok-9q7zX"}
    assert "tok-9q7zX" not in repr(cfg)
