"""TOML configs as the apps write them: kano-backlog's [embedding] + [vector], our own tables."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from vllm_embed._config import (
    OPENAI_DEFAULT_BASE_URL,
    EmbedConfig,
    UnknownConfigKeyWarning,
    load_config,
)
from vllm_embed._errors import ConfigFileError, ConfigValueError
from vllm_embed._types import Secret

FIXTURES = Path(__file__).parent / "fixtures"


def test_backlog_config_is_read_as_written() -> None:
    path = FIXTURES / "kano_backlog_config.toml"
    cfg = load_config(path, env={})
    assert cfg.format == "toml"
    assert cfg.source == str(path)
    assert cfg.base_urls == ("http://localhost:8000/v1",)
    assert cfg.model == "BAAI/bge-large-zh-v1.5"
    assert cfg.dimension == 1024
    assert cfg.api_key == Secret("dummy-key")
    assert cfg.extra == {"provider": "openai"}
    # the [vector] table (and its [vector.options] sub-table) is kept, not rejected
    assert cfg.vector == {
        "backend": "sqlite",
        "path": ".cache/vector",
        "collection": "backlog",
        "metric": "cosine",
        "options": {"storage_format": "binary"},
    }
    assert cfg.store_path == ".cache/vector"
    assert cfg.origins["model"] == f"file:{path}#embedding.model"
    assert cfg.origins["vector"] == f"file:{path}#vector"
    assert cfg.origins["timeout"] == "default"


def test_other_app_tables_are_not_mistaken_for_settings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unknown-key warning from [product], [search], ...
        cfg = load_config(FIXTURES / "kano_backlog_config.toml", env={})
    assert "name" not in cfg.extra and "top_k" not in cfg.extra


def test_example_4_without_base_url_means_the_official_openai_api() -> None:
    cfg = load_config(FIXTURES / "kano_openai_fallback.toml", env={"OPENAI_API_KEY": "sk-x1"})
    assert cfg.base_urls == (OPENAI_DEFAULT_BASE_URL,)
    assert cfg.origins["base_urls"] == "default"
    assert cfg.api_key == Secret("sk-x1")  # "api_key from OPENAI_API_KEY env var"
    assert cfg.origins["api_key"] == "env:OPENAI_API_KEY"
    assert cfg.dimension == 1536


def test_example_4_with_openai_base_url_set_uses_it() -> None:
    cfg = load_config(
        FIXTURES / "kano_openai_fallback.toml", env={"OPENAI_BASE_URL": "http://proxy:1/v1"}
    )
    assert cfg.base_urls == ("http://proxy:1/v1",)
    assert cfg.origins["base_urls"] == "env:OPENAI_BASE_URL"


def test_no_base_url_and_not_openai_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[embedding]\nprovider = "local"\nmodel = "m"\n')
    with pytest.raises(ConfigValueError, match="No base URL") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "VLLM_EMBED_BASE_URL" in str(info.value)


def test_env_references_keep_keys_out_of_the_file() -> None:
    path = FIXTURES / "kano_remote_env_key.toml"
    cfg = load_config(path, env={"KANO_EMBED_KEY": "k-from-env", "VECTOR_ROOT": "/data"})
    assert cfg.api_key == Secret("k-from-env")
    assert cfg.base_urls == ("http://gpu-server.internal:8000/v1",)  # ${GPU_HOST:-...} default
    assert cfg.vector["path"] == "/data/vector"


def test_unset_env_reference_names_the_variable_not_a_value() -> None:
    with pytest.raises(ConfigValueError, match=r"KANO_EMBED_KEY") as info:
        load_config(FIXTURES / "kano_remote_env_key.toml", env={})
    assert "embedding.api_key" in str(info.value)


def test_pyproject_tool_table_with_several_urls_and_client_options() -> None:
    cfg = load_config(FIXTURES / "pyproject.toml", env={})
    assert cfg.base_urls == ("http://embed-a.internal:8000/v1", "http://embed-b.internal:8000/v1")
    assert (cfg.batch_size, cfg.max_concurrency, cfg.dimension) == (128, 8, 384)
    assert cfg.vector == {"backend": "nano-vectordb", "path": "data/faq.json"}
    kwargs = cfg.client_kwargs()
    assert kwargs["base_url"] == list(cfg.base_urls)
    assert kwargs["encoding"] == "base64"  # client options pass through
    assert cfg.origins["batch_size"].endswith("#tool.vllm-embed.batch_size")


def test_vllm_embed_toml_keys_at_top_level() -> None:
    cfg = load_config(FIXTURES / "vllm-embed.toml", env={})
    assert cfg.model == "minilm"
    assert cfg.timeout == 15.5
    assert cfg.retries == 2
    assert cfg.retry_policy() is not None and cfg.retry_policy().max_attempts == 3  # type: ignore[union-attr]
    assert cfg.store_path == "stores/notes.json"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('[embedding]\nmodel = "m"\ndimension = = 3\n', 3, 13),
        ('[embedding]\nbase_url = "http://x/v1\n', 2, None),
        ("[embedding]\nmodel = 'm'\n[embedding]\n", 3, None),
        ('[embedding]\nmodel = "unterminated', 2, None),
    ],
)
def test_toml_syntax_errors_give_line_and_column(
    tmp_path: Path, text: str, line: int, column: int | None
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as info:
        load_config(path, env={})
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert err.column is not None and err.column >= 1
    if column is not None:
        assert err.column == column
    assert f"line {err.line}, column {err.column}" in str(err)


@pytest.mark.parametrize("value", ["0", "-4", '"big"', "3.5", "true"])
def test_dimension_must_be_a_positive_integer(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[embedding]\nbase_url = "http://x:1/v1"\ndimension = {value}\n')
    with pytest.raises(ConfigValueError, match=r"dimension .* must be a positive integer") as info:
        load_config(path, env={})
    assert "embedding.dimension" in str(info.value)


def test_unknown_keys_warn_with_a_named_class_and_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[embedding]\nbase_ulr = "http://x:1/v1"\nbase_url = "http://y:1/v1"\n')
    with pytest.warns(UnknownConfigKeyWarning, match=r"'base_ulr'.*did you mean 'base_url'"):
        cfg = load_config(path, env={})
    assert cfg.extra["base_ulr"] == "http://x:1/v1"
    assert cfg.base_urls == ("http://y:1/v1",)


def test_not_an_http_url_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[embedding]\nbase_url = "localhost:8000"\n')
    with pytest.raises(ConfigValueError, match="not an http"):
        load_config(path, env={})


def test_explicit_section(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        '[services.search.embedding]\nbase_url = "http://a:1/v1"\n'
        '[services.chat]\nbase_url = "http://b:1/v1"\n'
    )
    assert load_config(path, section="services.search.embedding", env={}).base_urls == (
        "http://a:1/v1",
    )
    with pytest.raises(ConfigValueError, match=r"services\.search has no key 'embedder'"):
        load_config(path, section="services.search.embedder", env={})


def test_no_section_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[server]\nport = 8000\n")
    with pytest.raises(ConfigValueError, match="No embedding settings found"):
        load_config(path, env={})


def test_missing_file_and_directory_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="not found") as info:
        load_config(tmp_path / "nope.toml", env={})
    assert info.value.path == str(tmp_path / "nope.toml")
    with pytest.raises(ConfigFileError, match="directory"):
        load_config(tmp_path, env={})
    locked = tmp_path / "locked.toml"
    locked.write_text('[embedding]\nbase_url = "http://x:1/v1"\n')
    locked.chmod(0)
    try:
        if locked.stat().st_mode & 0o777 == 0 and not _can_read(locked):
            with pytest.raises(ConfigFileError, match="permission denied"):
                load_config(locked, env={})
        else:  # running as root: the file stays readable, and must load
            assert load_config(locked, env={}).base_urls == ("http://x:1/v1",)
    finally:
        locked.chmod(0o644)


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[embedding]\nmodel = "\xff\xfe"\n')
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        load_config(path, env={})


def test_result_is_immutable() -> None:
    cfg = load_config(FIXTURES / "kano_backlog_config.toml", env={})
    assert isinstance(cfg, EmbedConfig)
    with pytest.raises(AttributeError):
        cfg.model = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.vector["path"] = "elsewhere"  # type: ignore[index]


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".ini"])
def test_unsupported_formats_are_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"config{suffix}"
    path.write_text("embedding:\n  base_url: http://x:1/v1\n")
    with pytest.raises(ConfigFileError, match="does not read"):
        load_config(path, env={})
