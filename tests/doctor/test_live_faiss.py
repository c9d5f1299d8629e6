"""``vllm-embed doctor --store`` on FAISS stores made by LangChain, on the live vLLM server
(all-MiniLM-L6-v2, 384 d): the space ``migrate`` recorded passes and an instruction change
fails; without a record, the probe tells a store of another model at the same dimension
from one the live model made (nox session ``migrate_live``, which has faiss-cpu and
langchain-community)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from doctor_support import store_line
from live_support import FACTS, MINILM_DIM, OLD_DIM, langchain_faiss, live_embeddings

from vllm_embed.cli import main


@pytest.fixture(autouse=True)
def _default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live server is real HTTP: the client's default transport, as in the live suites."""
    monkeypatch.delenv("VLLM_EMBED_LEAN_HTTP", raising=False)


def _doctor(server, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    args = ["doctor", "--base-url", server.base_url, "--api-key", server.api_key]
    return CliRunner().invoke(main, [*args, "--store", str(store), *extra])


def test_the_record_migrate_wrote_passes_and_an_instruction_change_fails(tmp_path, vllm_server):
    folder = langchain_faiss(tmp_path / "faiss_index", OLD_DIM)
    args = ["migrate", str(folder), "--base-url", vllm_server.base_url, "--yes"]
    env = {"VLLM_EMBED_API_KEY": vllm_server.api_key}
    migrated = CliRunner().invoke(main, [*args, "--allow-dangerous-deserialization"], env=env)
    assert migrated.exit_code == 0, migrated.output

    # the record migrate wrote matches the live server
    passed = _doctor(vllm_server, folder)
    assert passed.exit_code == 0, passed.output
    assert store_line(passed).lstrip().startswith("PASS")
    assert f"model {vllm_server.model!r}, dim {MINILM_DIM}" in store_line(passed)

    # the same server and dimension, but documents now get an instruction (e5 preset)
    config = tmp_path / "app.toml"
    config.write_text(
        "[embedding]\n"
        f'base_url = "{vllm_server.base_url}"\n'
        f'api_key = "{vllm_server.api_key}"\n'
        f'model = "{vllm_server.model}"\n'
        'instructions = "e5"\n'
    )
    changed = CliRunner().invoke(main, ["doctor", str(config), "--store", str(folder)])
    assert changed.exit_code == 1, changed.output
    line = store_line(changed)
    assert line.lstrip().startswith("FAIL")
    assert "document instruction '' != 'passage: '" in line
    assert f"vllm-embed migrate {folder}" in changed.output
    assert vllm_server.api_key not in changed.output


def test_doctor_probe_tells_another_model_at_the_same_dimension(tmp_path, vllm_server):
    # 384-d vectors from another "model" (LangChain's fake embedding); no record: probed
    folder = langchain_faiss(tmp_path / "other_model", MINILM_DIM)
    without_consent = _doctor(vllm_server, folder)
    assert store_line(without_consent).lstrip().startswith("WARN")
    result = _doctor(vllm_server, folder, "--allow-dangerous-deserialization")
    assert result.exit_code == 1, result.output
    line = store_line(result)
    assert line.lstrip().startswith("FAIL") and "another model" in line
    assert "6 stored texts re-embedded" in line

    # a store the live model made (through LangChain, no record): the probe says same
    from langchain_community.vectorstores import FAISS

    from vllm_embed import EmbeddingClient

    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client:
        db = FAISS.from_texts(FACTS, live_embeddings(client))
    db.save_local(str(tmp_path / "same_model"))
    same = _doctor(vllm_server, tmp_path / "same_model", "--allow-dangerous-deserialization")
    assert same.exit_code == 0, same.output
    assert store_line(same).lstrip().startswith("PASS")
