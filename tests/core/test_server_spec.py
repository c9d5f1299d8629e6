"""ServerSpec -> argv / environment, and reading a local model's context length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_embed import ConfigValueError
from vllm_embed.server import (
    API_KEY_ENV,
    SERVER_MODULE,
    ServerSpec,
    build_command,
    build_env,
    format_command,
    model_max_len,
)

KEY = "sk-spec-secret-987"


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_command_runs_the_module_for_pooling() -> None:
    cmd = build_command(ServerSpec(model="BAAI/bge-m3", port=8001), "/env/bin/python")
    assert cmd[:3] == ["/env/bin/python", "-m", SERVER_MODULE]
    assert SERVER_MODULE == "vllm.entrypoints.openai.api_server"
    assert _flag(cmd, "--model") == "BAAI/bge-m3"
    assert _flag(cmd, "--runner") == "pooling"
    assert _flag(cmd, "--host") == "127.0.0.1"
    assert _flag(cmd, "--port") == "8001"
    for absent in (
        "--served-model-name",
        "--max-model-len",
        "--dtype",
        "--hf-overrides",
        "--enforce-eager",
    ):
        assert absent not in cmd


def test_command_carries_every_option() -> None:
    spec = ServerSpec(
        model="/models/minilm",
        served_model_name="minilm",
        max_model_len=256,
        dtype="float32",
        gpu_memory_utilization=0.3,
        hf_overrides={"is_matryoshka": True},
        extra_args=("--seed", "1"),
        enforce_eager=True,
    )
    cmd = build_command(spec, "python", port=9000)
    assert "--enforce-eager" in cmd
    assert _flag(cmd, "--port") == "9000"
    assert _flag(cmd, "--served-model-name") == "minilm"
    assert _flag(cmd, "--max-model-len") == "256"
    assert _flag(cmd, "--dtype") == "float32"
    assert _flag(cmd, "--gpu-memory-utilization") == "0.3"
    assert json.loads(_flag(cmd, "--hf-overrides")) == {"is_matryoshka": True}
    assert cmd[-2:] == ["--seed", "1"]


def test_port_argument_overrides_spec_and_is_required() -> None:
    assert _flag(build_command(ServerSpec(model="m", port=1), "p", port=2), "--port") == "2"
    with pytest.raises(ConfigValueError, match="port"):
        build_command(ServerSpec(model="m"), "python")


def test_key_never_in_argv_or_repr() -> None:
    spec = ServerSpec(model="m", api_key=KEY, port=1)
    cmd = build_command(spec, "python")
    assert KEY not in format_command(cmd)
    assert "--api-key" not in cmd
    assert KEY not in repr(spec)


def test_env_carries_key_and_cpu_settings(tmp_path: Path) -> None:
    env = build_env(ServerSpec(model=str(tmp_path), api_key=KEY), cpu=True, base={})
    assert env[API_KEY_ENV] == KEY
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"  # a local folder needs no hub


def test_env_drops_a_stray_key_and_keeps_user_settings() -> None:
    base = {API_KEY_ENV: "inherited", "VLLM_CPU_KVCACHE_SPACE": "4", "PATH": "/bin"}
    env = build_env(ServerSpec(model="org/hub-model"), cpu=True, base=base)
    assert API_KEY_ENV not in env
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert "HF_HUB_OFFLINE" not in env  # a hub id must be downloadable
    assert env["PATH"] == "/bin"


def test_gpu_env_has_no_cpu_settings() -> None:
    env = build_env(ServerSpec(model="org/m"), cpu=False, base={})
    assert "VLLM_CPU_KVCACHE_SPACE" not in env


def test_name_is_served_name_or_model() -> None:
    assert ServerSpec(model="org/m").name == "org/m"
    assert ServerSpec(model="org/m", served_model_name="x").name == "x"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "sentence_bert_config.json": {"max_seq_length": 256},
                "config.json": {"max_position_embeddings": 512},
            },
            256,
        ),
        ({"config.json": {"max_position_embeddings": 8192}}, 8192),
        ({"config.json": {"hidden_size": 384}}, None),
        ({"config.json": "not json"}, None),
        ({}, None),
    ],
)
def test_model_max_len(tmp_path: Path, files: dict[str, object], expected: int | None) -> None:
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name).write_text(text)
    assert model_max_len(tmp_path) == expected
