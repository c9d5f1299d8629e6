"""`vllm-embed config show`: resolved settings, their origins, keys masked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_embed.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
KANO = FIXTURES / "kano_backlog_config.toml"
KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_."


def key_like(text: str) -> bool:
    """Letters and digits mixed, like a real key (so it cannot be a word of the report)."""
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def show(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["config", "show", *args], env=env)


def row(result: Result, name: str) -> str:
    return next(line for line in result.output.splitlines() if line.split()[:1] == [name])


def test_backlog_settings_with_origins_and_the_vector_table() -> None:
    result = show(str(KANO))
    assert result.exit_code == 0, result.output
    assert f"Config: {KANO} (toml)" in result.output
    assert "http://localhost:8000/v1" in row(result, "base_url")
    assert f"file {KANO} [embedding.base_url]" in row(result, "base_url")
    assert "1024" in row(result, "dimension")
    assert "256 (client default)" in row(result, "batch_size")
    assert row(result, "batch_size").rstrip().endswith("default")
    assert "*** (masked, 9 chars)" in row(result, "api_key")
    assert "dummy-key" not in result.output
    assert f"vector (from file {KANO} [vector]):" in result.output
    for line in ("backend = sqlite", "path = .cache/vector", "options.storage_format = binary"):
        assert f"  {line}" in result.output
    assert "provider = openai" in result.output


def test_env_origin_is_shown() -> None:
    result = show(str(KANO), env={"VLLM_EMBED_MODEL": "minilm", "VLLM_EMBED_API_KEY": "k-99999"})
    assert "minilm" in row(result, "model")
    assert row(result, "model").rstrip().endswith("env VLLM_EMBED_MODEL")
    assert "env VLLM_EMBED_API_KEY" in row(result, "api_key")
    assert "k-99999" not in result.output


def test_json_output_masks_keys_and_auth_headers() -> None:
    result = show(str(FIXTURES / "pdf_kb_app.json"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["api_key"] == "*** (masked, 12 chars)"
    assert data["headers"] == {
        "Authorization": "*** (masked, 17 chars)",
        "X-Custom-Header": "value",
    }
    assert data["retries"] == 3 and data["timeout"] == 60.0
    assert data["origins"]["retries"].endswith("#pdf_knowledge.embedder.retries")
    assert "your-api-key" not in result.output and "your-token" not in result.output


def test_python_config_and_section_option(tmp_path: Path) -> None:
    result = show(str(FIXTURES / "dvd" / "config.py"))
    assert result.exit_code == 0, result.output
    assert "Qwen/Qwen3-Embedding-8B" in row(result, "model")
    assert "[AOAI_EMBEDDING_LARGE_DIM]" in row(result, "dimension")
    assert "your-secret-key" not in result.output

    path = tmp_path / "app.json"
    path.write_text(
        json.dumps(
            {
                "a": {"embedder": {"base_url": "http://a:1/v1"}},
                "b": {"embedder": {"base_url": "http://b:1/v1"}},
            }
        )
    )
    assert "http://b:1/v1" in show(str(path), "--section", "b.embedder").output
    ambiguous = show(str(path))
    assert ambiguous.exit_code == 1
    assert "Several embedding sections" in ambiguous.output


def test_unknown_keys_are_one_warning_line_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[embedding]\nbase_url = "http://x:1/v1"\nmodle = "m"\n')
    result = show(str(path))
    assert result.exit_code == 0
    assert "Warning: Unknown key 'modle'" in result.stderr
    assert "did you mean 'model'" in result.stderr


def test_errors_are_one_line_with_exit_code_1(tmp_path: Path) -> None:
    missing = show(str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: Config file not found")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "embedder": {"api_key": "sk-in-a-broken-file",}\n}\n')
    broken = show(str(bad))
    assert broken.exit_code == 1
    # 1-based, at the "}" (Python 3.13's json: at the trailing comma before it)
    column = bad.read_text().splitlines()[1].index(",}") + (1 if sys.version_info >= (3, 13) else 2)
    assert f"line 2, column {column}" in broken.stderr
    assert "sk-in-a-broken-file" not in broken.output
    assert "Traceback" not in broken.output


def test_environment_only() -> None:
    result = show(env={"VLLM_EMBED_BASE_URL": "http://e:1/v1"})
    assert result.exit_code == 0
    assert "environment and arguments only" in result.output
    assert "env VLLM_EMBED_BASE_URL" in row(result, "base_url")


@settings(max_examples=40, deadline=None)
@given(key=st.text(alphabet=KEY_ALPHABET, min_size=12, max_size=64).filter(key_like))
def test_keys_never_appear_in_config_show(key: str) -> None:
    env = {"VLLM_EMBED_BASE_URL": "http://e:1/v1", "VLLM_EMBED_API_KEY": key}
    for args in ([], ["--json"]):
        result = show(*args, env=env)
        assert result.exit_code == 0
        assert key not in result.output
