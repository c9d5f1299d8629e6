"""Python config modules like the DVD video-QA pipeline's `config.py`."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from vllm_embed._config import PYTHON_NAME_MAP, load_config
from vllm_embed._errors import ConfigFileError, ConfigValueError
from vllm_embed._types import Secret

FIXTURES = Path(__file__).parent / "fixtures"
DVD = FIXTURES / "dvd" / "config.py"


def test_values_set_inside_the_vllm_block_are_read() -> None:
    cfg = load_config(DVD, env={})
    assert cfg.format == "python"
    assert cfg.base_urls == ("http://localhost:8888/v1",)
    assert cfg.api_key == Secret("your-secret-key")
    assert cfg.model == "Qwen/Qwen3-Embedding-8B"
    assert cfg.dimension == 4096
    assert cfg.origins["base_urls"] == f"file:{DVD}#EMBEDDING_ENDPOINT"
    assert cfg.origins["dimension"] == f"file:{DVD}#AOAI_EMBEDDING_LARGE_DIM"


def test_branch_chosen_by_the_module_itself(clean_env: pytest.MonkeyPatch) -> None:
    """SERVER=OPENAI: no EMBEDDING_* names, the key falls back to OPENAI_KEY."""
    clean_env.setenv("DVD_SERVER", "OPENAI")
    cfg = load_config(DVD, env={}, overrides={"base_url": "http://localhost:8888/v1"})
    assert cfg.model == "text-embedding-3-large"
    assert cfg.dimension == 3072
    assert cfg.api_key == Secret("sk-openai-fallback-key-000000")
    assert cfg.origins["api_key"].endswith("#OPENAI_KEY")


def test_without_an_endpoint_no_base_url_is_an_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DVD_SERVER", "AZURE")
    with pytest.raises(ConfigValueError, match="No base URL"):
        load_config(DVD, env={})


def test_dotted_module_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.syspath_prepend(str(FIXTURES))
    sys.modules.pop("dvd.config", None)
    sys.modules.pop("dvd", None)
    try:
        cfg = load_config("dvd.config", env={})
    finally:
        sys.modules.pop("dvd.config", None)
        sys.modules.pop("dvd", None)
    assert cfg.source == "dvd.config"
    assert cfg.dimension == 4096


def test_unknown_module_name_is_a_file_error() -> None:
    with pytest.raises(ConfigFileError, match=r"no importable module named 'nope_cfg\.settings'"):
        load_config("nope_cfg.settings", env={})


def test_names_argument_extends_the_table(tmp_path: Path) -> None:
    path = tmp_path / "settings.py"
    path.write_text('MY_EMBED_URL = "http://emb:9/v1"\nMY_DIM = "768"\nEMBEDDING_DIM = 1\n')
    cfg = load_config(path, env={}, names={"base_url": ["MY_EMBED_URL"], "dimension": "MY_DIM"})
    assert cfg.base_urls == ("http://emb:9/v1",)
    assert cfg.dimension == 768  # user names are tried first
    assert "EMBEDDING_ENDPOINT" in PYTHON_NAME_MAP["base_urls"]
    with pytest.raises(ConfigValueError, match="names= has an unknown setting"):
        load_config(path, env={}, names={"colour": ["X"]})


def test_the_public_table_can_be_extended(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.py"
    path.write_text('ACME_VECTORS_URL = "http://acme:1/v1"\n')
    clean_env.setitem(PYTHON_NAME_MAP, "base_urls", ("ACME_VECTORS_URL",))
    assert load_config(path, env={}).base_urls == ("http://acme:1/v1",)


def test_a_config_that_raises_is_summarised_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text(
        textwrap.dedent(
            """\
            import os

            SERVER = os.environ["DVD_SERVER_THAT_IS_NOT_SET"]
            """
        )
    )
    with pytest.raises(ConfigFileError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    assert "KeyError" in message and "line 3" in message
    assert info.value.line == 3
    assert "executed" in message or "runs it" in message


def test_syntax_error_in_python_config(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text('EMBEDDING_ENDPOINT = "http://x/v1"\nif SERVER = 1:\n    pass\n')
    with pytest.raises(ConfigFileError, match="syntax error at line 2") as info:
        load_config(path, env={})
    assert info.value.line == 2


def test_loading_executes_only_the_given_file(tmp_path: Path) -> None:
    """Its directory is not put on sys.path; a sibling import fails, clearly."""
    (tmp_path / "secrets_helper.py").write_text("KEY = 'k'\n")
    path = tmp_path / "config.py"
    path.write_text("from secrets_helper import KEY\nEMBEDDING_ENDPOINT = 'http://x:1/v1'\n")
    before = list(sys.path)
    with pytest.raises(ConfigFileError, match="ModuleNotFoundError"):
        load_config(path, env={})
    assert sys.path == before
    assert "secrets_helper" not in sys.modules


def test_each_load_executes_again_and_leaves_no_module_behind(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text("import itertools\nEMBEDDING_ENDPOINT = 'http://x:1/v1'\n")
    count = len(sys.modules)
    load_config(path, env={})
    path.write_text("EMBEDDING_ENDPOINT = 'http://y:1/v1'\n")
    assert load_config(path, env={}).base_urls == ("http://y:1/v1",)
    assert not [m for m in sys.modules if m.startswith("_vllm_embed_config_")]
    assert len(sys.modules) <= count + 1


def test_module_values_may_use_env_references(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text('EMBEDDING_ENDPOINT = "http://x:1/v1"\nEMBEDDING_API_KEY = "${DVD_KEY}"\n')
    cfg = load_config(path, env={"DVD_KEY": "from-env"})
    assert cfg.api_key == Secret("from-env")


def test_module_object_is_accepted() -> None:
    import types

    module = types.ModuleType("inline_config")
    module.EMBEDDING_ENDPOINT = "http://inline:1/v1"  # type: ignore[attr-defined]
    module.AOAI_EMBEDDING_LARGE_DIM = 384  # type: ignore[attr-defined]
    cfg = load_config(module, env={})
    assert (cfg.base_urls, cfg.dimension) == (("http://inline:1/v1",), 384)


def test_wrong_type_in_module(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text('EMBEDDING_ENDPOINT = "http://x:1/v1"\nAOAI_EMBEDDING_LARGE_DIM = 0\n')
    with pytest.raises(ConfigValueError, match="AOAI_EMBEDDING_LARGE_DIM"):
        load_config(path, env={})
