"""FAISS stores made by LangChain, migrated on the live vLLM server (all-MiniLM-L6-v2,
384 d) by the CLI, then queried through langchain-community's FAISS; and ``doctor --store``
telling a same-dimension model or instruction change apart on the live server."""

from __future__ import annotations

from pathlib import Path

import faiss
from click.testing import CliRunner
from live_support import ANSWER, FACTS, MINILM_DIM, OLD_DIM, QUESTION

from vllm_embed.cli import main


def _langchain_faiss(folder: Path, dim: int) -> Path:
    """A cosine FAISS store (IndexFlatIP, normalize_L2) saved by langchain-community."""
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = FAISS.from_texts(
        FACTS,
        DeterministicFakeEmbedding(size=dim),
        metadatas=[{"n": i} for i in range(len(FACTS))],
        ids=[f"f{i}" for i in range(len(FACTS))],
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=True,
    )
    db.save_local(str(folder))
    return folder


def _live_embeddings(client):  # type: ignore[no-untyped-def]
    from langchain_core.embeddings import Embeddings

    class Live(Embeddings):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            return client.embed_documents(list(texts)).tolist()

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return client.embed_query(text).tolist()

    return Live()


def _doctor(server, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    args = ["doctor", "--base-url", server.base_url, "--api-key", server.api_key]
    return CliRunner().invoke(main, [*args, "--store", str(store), *extra])


def _store_line(result) -> str:  # type: ignore[no-untyped-def]
    return next(line for line in result.output.splitlines() if "store space" in line)


def test_langchain_faiss_migrated_by_the_cli_then_queried(tmp_path, vllm_server, make_client):
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    folder = _langchain_faiss(tmp_path / "faiss_index", OLD_DIM)
    pkl = (folder / "index.pkl").read_bytes()
    args = ["migrate", str(folder), "--base-url", vllm_server.base_url, "--yes"]
    env = {"VLLM_EMBED_API_KEY": vllm_server.api_key}
    refused = CliRunner().invoke(main, args, env=env)
    assert refused.exit_code == 1 and "--allow-dangerous-deserialization" in refused.output

    result = CliRunner().invoke(main, [*args, "--allow-dangerous-deserialization"], env=env)
    assert result.exit_code == 0, result.output
    assert "format: LangChain FAISS (save_local); 6 records" in result.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert "verified     langchain-community FAISS" in result.output
    assert vllm_server.api_key not in result.output
    assert (folder / "index.pkl").read_bytes() == pkl
    index = faiss.read_index(str(folder / "index.faiss"))
    assert (type(index).__name__, index.d) == ("IndexFlatIP", MINILM_DIM)

    db = FAISS.load_local(
        str(folder),
        _live_embeddings(make_client(vllm_server)),
        allow_dangerous_deserialization=True,
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=True,
    )
    hit = db.similarity_search(QUESTION, k=1)[0]
    assert (hit.id, hit.page_content, hit.metadata) == (f"f{ANSWER}", FACTS[ANSWER], {"n": ANSWER})

    # the record migrate wrote matches the live server
    passed = _doctor(vllm_server, folder)
    assert passed.exit_code == 0, passed.output
    assert _store_line(passed).lstrip().startswith("PASS")
    assert f"model {vllm_server.model!r}, dim {MINILM_DIM}" in _store_line(passed)

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
    line = _store_line(changed)
    assert line.lstrip().startswith("FAIL")
    assert "document instruction '' != 'passage: '" in line
    assert f"vllm-embed migrate {folder}" in changed.output
    assert vllm_server.api_key not in changed.output


def test_doctor_probe_tells_another_model_at_the_same_dimension(tmp_path, vllm_server):
    # 384-d vectors from another "model" (LangChain's fake embedding); no record: probed
    folder = _langchain_faiss(tmp_path / "other_model", MINILM_DIM)
    without_consent = _doctor(vllm_server, folder)
    assert _store_line(without_consent).lstrip().startswith("WARN")
    result = _doctor(vllm_server, folder, "--allow-dangerous-deserialization")
    assert result.exit_code == 1, result.output
    line = _store_line(result)
    assert line.lstrip().startswith("FAIL") and "another model" in line
    assert "6 stored texts re-embedded" in line

    # a store the live model made (through LangChain, no record): the probe says same
    from langchain_community.vectorstores import FAISS

    from vllm_embed import EmbeddingClient

    with EmbeddingClient(vllm_server.base_url, api_key=vllm_server.api_key) as client:
        db = FAISS.from_texts(FACTS, _live_embeddings(client))
    db.save_local(str(tmp_path / "same_model"))
    same = _doctor(vllm_server, tmp_path / "same_model", "--allow-dangerous-deserialization")
    assert same.exit_code == 0, same.output
    assert _store_line(same).lstrip().startswith("PASS")
