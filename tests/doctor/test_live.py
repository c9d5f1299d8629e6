"""`vllm-embed doctor` against the live vLLM server (all-MiniLM-L6-v2 served as "minilm";
nox session contract).

The configs are written in the shapes real apps use (kano-backlog's TOML, a PDF knowledge
base's JSON, the DVD video-QA pipeline's Python module) and point at the session's server.
The key reaches them through ``${VAR}`` so the tests also prove it never shows up in the
output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vllm_embed._config import load_config
from vllm_embed.cli import main
from vllm_embed.doctor import run_checks

pytestmark = pytest.mark.contract  # a live vLLM server (nox session contract)


@pytest.fixture(autouse=True)
def _default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live server is real HTTP: the client's default transport, as in tests/contract."""
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP", raising=False)


CHECKS = (
    "server reachable",
    "API key accepted",
    "model served",
    "dimension",
    "max_model_len",
    "round trip",
)


def backlog_toml(tmp_path: Path, server: Any, *, dimension: int) -> Path:
    """The backlog tool's config.toml: [embedding] + [vector], key from the environment."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""\
[product]
name = "game-engine"

[embedding]
provider = "openai"
model = "{server.model}"
dimension = {dimension}
base_url = "{server.base_url}"
api_key = "${{DOCTOR_KEY}}"

[vector]
backend = "sqlite"
path = ".cache/vector"
collection = "backlog"
metric = "cosine"
"""
    )
    return path


def doctor(*args: str, key: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args], env={"DOCTOR_KEY": key})


def status_of(result: Result) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for line in result.output.splitlines():
        words = line.split()
        if words[:1] and words[0] in ("PASS", "FAIL", "WARN", "SKIP"):
            name = next(c for c in CHECKS if line.split(words[0], 1)[1].strip().startswith(c))
            statuses[name] = words[0]
    return statuses


def test_declared_1024_against_the_384_dim_server_fails_with_the_migrate_hint(
    vllm_server: Any, tmp_path: Path
) -> None:
    path = backlog_toml(tmp_path, vllm_server, dimension=1024)
    result = doctor(str(path), key=vllm_server.api_key)
    assert result.exit_code == 1, result.output
    assert status_of(result) == {
        "server reachable": "PASS",
        "API key accepted": "PASS",
        "model served": "PASS",
        "dimension": "FAIL",
        "max_model_len": "PASS",
        "round trip": "PASS",
    }, result.output
    assert "declares 1024 but the server produces 384" in result.output
    assert "the store at .cache/vector" in result.output
    assert f"vllm-embed migrate .cache/vector --config {path}" in result.output
    assert vllm_server.api_key not in result.output


def test_a_correct_config_passes_every_check(vllm_server: Any, tmp_path: Path) -> None:
    path = backlog_toml(tmp_path, vllm_server, dimension=384)
    result = doctor(str(path), key=vllm_server.api_key)
    assert result.exit_code == 0, result.output
    assert set(status_of(result).values()) == {"PASS"}, result.output
    assert "256 tokens" in result.output  # all-MiniLM-L6-v2's max_model_len
    assert "GET /health OK, vLLM " in result.output
    assert "All checks passed." in result.output
    assert vllm_server.api_key not in result.output


def test_wrong_key_is_refused_by_the_real_server(vllm_server: Any, tmp_path: Path) -> None:
    path = backlog_toml(tmp_path, vllm_server, dimension=384)
    wrong = "not-the-server-key-5c1e"
    result = doctor(str(path), key=wrong)
    assert result.exit_code == 1
    assert status_of(result)["API key accepted"] == "FAIL"
    assert "401" in result.output
    assert wrong not in result.output and vllm_server.api_key not in result.output


def test_app_json_config_with_an_unserved_model_lists_the_served_one(
    vllm_server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.json"
    embedder = {
        "type": "custom",
        "base_url": vllm_server.base_url,
        "model": "your-embedding-model",
        "api_key": "${DOCTOR_KEY}",
        "timeout": 60,
        "retries": 3,
        "backoff_factor": 2,
    }
    path.write_text(
        json.dumps({"logging": {"level": "DEBUG"}, "pdf_knowledge": {"embedder": embedder}})
    )
    result = doctor(str(path), key=vllm_server.api_key)
    assert result.exit_code == 1
    assert status_of(result)["model served"] == "FAIL"
    assert "'your-embedding-model' is not served; the server serves 'minilm'" in result.output


def test_python_module_config_passes(vllm_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text(
        f"""\
SERVER = "VLLM"
if SERVER == "AZURE":
    AOAI_EMBEDDING_LARGE_DIM = 3072
elif SERVER == "VLLM":
    EMBEDDING_ENDPOINT = "{vllm_server.base_url}"
    EMBEDDING_API_KEY = "${{DOCTOR_KEY}}"
    AOAI_EMBEDDING_LARGE_MODEL_NAME = "{vllm_server.model}"
    AOAI_EMBEDDING_LARGE_DIM = 384
"""
    )
    result = doctor(str(path), key=vllm_server.api_key)
    assert result.exit_code == 0, result.output
    assert set(status_of(result).values()) == {"PASS"}


def test_run_checks_api_reports_the_real_dimension(vllm_server: Any) -> None:
    cfg = load_config(
        env={},
        overrides={
            "base_url": vllm_server.base_url,
            "api_key": vllm_server.api_key,
            "dimension": 1024,
        },
    )
    checks = {c.name: c for c in run_checks(cfg, timeout=30.0)}
    assert checks["model served"].status == "pass"  # the single served model is used
    assert checks["dimension"].status == "fail"
    assert "produces 384" in checks["dimension"].detail
    assert checks["dimension"].fix is not None
    assert f"vllm-embed migrate <store> --base-url {vllm_server.base_url}" in (
        checks["dimension"].fix
    )
