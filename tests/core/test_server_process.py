"""VLLMServer's lifecycle against a fake vLLM module in a real child process group.

These start local subprocesses that listen on 127.0.0.1 (hence ``enable_socket``);
no vLLM and no network are involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vllm_embed.server import ServerSpec, ServerStartError, VLLMServer
from vllm_embed_testing.fake_vllm_package import install_fake_vllm

pytestmark = pytest.mark.enable_socket
KEY = "sk-process-test-key-123"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_fake_vllm(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    return record


def _server(tmp_path: Path, **kwargs: object) -> VLLMServer:
    spec = ServerSpec(model="some/model", served_model_name="minilm", api_key=KEY)
    return VLLMServer(spec, python=sys.executable, log_path=tmp_path / "server.log", **kwargs)  # type: ignore[arg-type]


def test_start_wait_stop_leaves_no_process(fake: Path, tmp_path: Path) -> None:
    with _server(tmp_path) as server:
        assert server.health()
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.root_url == f"http://127.0.0.1:{server.port}"
        assert server.model == "minilm"
        assert server.startup_seconds is not None
        record = json.loads(fake.read_text())
        assert _alive(record["pid"]) and _alive(record["worker"])
    assert not server.running
    assert not _alive(record["pid"])
    assert not _alive(record["worker"]), "the worker child outlived stop()"


def test_key_travels_in_env_not_argv(fake: Path, tmp_path: Path) -> None:
    with _server(tmp_path):
        record = json.loads(fake.read_text())
    assert record["api_key_env"] == KEY
    assert KEY not in " ".join(record["argv"])
    assert "--runner" in record["argv"] and "pooling" in record["argv"]
    assert record["kvcache"] == "1"
    assert KEY not in (tmp_path / "server.log").read_text()


def test_process_exit_raises_with_log_tail(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "exit")
    server = _server(tmp_path)
    with pytest.raises(ServerStartError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code 3" in message
    assert "fake engine failed to start" in message
    assert info.value.log_path == tmp_path / "server.log"
    assert KEY not in message
    assert not server.running


def test_deadline_raises_and_stops_the_group(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "never")
    server = _server(tmp_path, start_timeout=1.0)
    with pytest.raises(ServerStartError, match=r"did not answer /health within 1 s"):
        server.start()
    record = json.loads(fake.read_text())
    assert not _alive(record["pid"]) and not _alive(record["worker"])


def test_stop_kills_a_server_that_ignores_sigterm(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "stubborn")
    server = _server(tmp_path).start()
    record = json.loads(fake.read_text())
    server.stop(grace=0.5)
    assert not _alive(record["pid"]) and not _alive(record["worker"])
    server.stop()  # idempotent


def test_repr_and_command_hide_the_key(fake: Path, tmp_path: Path) -> None:
    server = _server(tmp_path)
    assert KEY not in repr(server)
    assert KEY not in repr(server.spec)
    assert KEY not in " ".join(server.command())
    with pytest.raises(RuntimeError, match="start"):
        server.wait_ready()


_ORPHANING_PARENT = """
import sys, time
from vllm_embed.server import ServerSpec, VLLMServer
server = VLLMServer(ServerSpec(model="m"), python=sys.executable, log_path=sys.argv[1])
server.start()
print("ready", flush=True)
time.sleep(600)
"""


def test_server_dies_with_a_killed_parent(fake: Path, tmp_path: Path) -> None:
    """kill -9 of the process that started the server (a CI timeout) leaves no stray."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING_PARENT, str(tmp_path / "server.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        record = json.loads(fake.read_text())
        assert _alive(record["pid"])
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    for _ in range(200):  # bounded wait for the kernel's death signal to land
        if not _alive(record["pid"]) and not _alive(record["worker"]):
            break
        time.sleep(0.05)
    assert not _alive(record["pid"]), "the server outlived its killed parent"
    assert not _alive(record["worker"])
