"""systemd and Kubernetes renderings of a ServerSpec: same command, no secret."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from vllm_embed.server import ServerSpec, render_kubernetes, render_systemd
from vllm_embed.server._deploy import unit_name

KEY = "sk-deploy-secret-42"


def _spec(**kw: object) -> ServerSpec:
    base: dict[str, object] = {
        "model": "Qwen/Qwen3-Embedding-0.6B",
        "served_model_name": "qwen3-embed",
        "api_key": KEY,
        "port": 8001,
        "max_model_len": 8192,
        "hf_overrides": {"is_matryoshka": True},
    }
    base.update(kw)
    return ServerSpec(**base)  # type: ignore[arg-type]


def _exec_start(unit: str) -> list[str]:
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_unit_runs_the_same_command() -> None:
    unit = render_systemd(_spec(), "/opt/vllm/bin/python", cpu=False)
    argv = _exec_start(unit)
    assert argv[:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--runner") + 1] == "pooling"
    assert argv[argv.index("--port") + 1] == "8001"
    assert json.loads(argv[argv.index("--hf-overrides") + 1]) == {"is_matryoshka": True}
    for section in ("[Unit]", "[Service]", "[Install]"):
        assert section in unit
    assert "Restart=on-failure" in unit
    assert "VLLM_CPU_KVCACHE_SPACE" not in unit


def test_systemd_reads_key_from_environment_file_never_inline() -> None:
    unit = render_systemd(_spec(), "python", cpu=True)
    assert KEY not in unit
    assert "EnvironmentFile=/etc/vllm-embed/vllm-qwen3-embed.env" in unit
    assert "VLLM_API_KEY=<your key>" in unit
    assert "Environment=VLLM_CPU_KVCACHE_SPACE=1" in unit


def test_systemd_without_key_has_no_environment_file() -> None:
    unit = render_systemd(_spec(api_key=None), "python", cpu=False)
    assert "EnvironmentFile" not in unit


def test_systemd_escapes_percent_and_dollar() -> None:
    unit = render_systemd(_spec(extra_args=("--x", "50%", "--y", "$HOME")), "python", cpu=False)
    line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    assert "50%%" in line and "$$HOME" in line


def test_local_model_runs_offline(tmp_path: Path) -> None:
    unit = render_systemd(_spec(model=str(tmp_path)), "python", cpu=True)
    assert "Environment=HF_HUB_OFFLINE=1" in unit


def _yaml_list_after(text: str, key: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.strip() == f"{key}:")
    items = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("- "):
            break
        items.append(json.loads(line.strip()[2:]))
    return items


def test_k8s_deployment_and_service() -> None:
    text = render_kubernetes(_spec(), cpu=False)
    docs = text.split("\n---\n")
    assert len(docs) == 2
    assert "kind: Deployment" in docs[0] and "kind: Service" in docs[1]
    assert _yaml_list_after(text, "command") == [
        "python3",
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    args = _yaml_list_after(text, "args")
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == "8000"
    assert args[args.index("--runner") + 1] == "pooling"
    assert json.loads(args[args.index("--hf-overrides") + 1]) == {"is_matryoshka": True}
    assert "httpGet: {path: /health, port: http}" in text
    assert "nvidia.com/gpu: 1" in text
    assert 'image: "vllm/vllm-openai:latest"' in text


def test_k8s_key_comes_from_a_secret() -> None:
    text = render_kubernetes(_spec(), cpu=True, image="my/vllm-cpu:1")
    assert KEY not in text
    assert "secretKeyRef: {name: vllm-qwen3-embed-api-key, key: api-key}" in text
    assert "kubectl create secret generic vllm-qwen3-embed-api-key" in text
    assert 'image: "my/vllm-cpu:1"' in text
    assert "nvidia.com/gpu" not in text
    assert '{name: VLLM_CPU_KVCACHE_SPACE, value: "1"}' in text


def test_names_are_dns_safe() -> None:
    for model in ("Qwen/Qwen3-Embedding-0.6B", "/x/y/My_Model.v2", "A" * 80):
        name = unit_name(ServerSpec(model=model))
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name
        assert len(name) <= 53
