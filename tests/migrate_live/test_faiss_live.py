"""FAISS stores made by LangChain, migrated on the live vLLM server (all-MiniLM-L6-v2,
384 d) by the CLI, then queried through langchain-community's FAISS (``doctor --store`` on
these stores: tests/doctor/test_live_faiss.py)."""

from __future__ import annotations

import faiss
from click.testing import CliRunner
from live_support import (
    ANSWER,
    FACTS,
    MINILM_DIM,
    OLD_DIM,
    QUESTION,
    langchain_faiss,
    live_embeddings,
)

from vllm_embed.cli import main


def test_langchain_faiss_migrated_by_the_cli_then_queried(tmp_path, vllm_server, make_client):
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    folder = langchain_faiss(tmp_path / "faiss_index", OLD_DIM)
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
        live_embeddings(make_client(vllm_server)),
        allow_dangerous_deserialization=True,
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=True,
    )
    hit = db.similarity_search(QUESTION, k=1)[0]
    assert (hit.id, hit.page_content, hit.metadata) == (f"f{ANSWER}", FACTS[ANSWER], {"n": ANSWER})
