"""Qdrant and sqlite-vec stores migrated on the live vLLM server (all-MiniLM-L6-v2, 384 d)
through the CLI, then queried through langchain-qdrant / LangChain's SQLiteVec: a
question finds the record that answers it. One server for the session; never skips."""

from __future__ import annotations

from click.testing import CliRunner
from live_support import ANSWER, FACTS, MINILM_DIM, QUESTION, live_embeddings
from qdrant_sqlitevec_support import _langchain_connection
from stores_support import OLD_DIM

from vllm_embed.cli import main
from vllm_embed.migrate import read_sidecar
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace


def _migrate(store, server):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main,
        ["migrate", str(store), "--base-url", server.base_url, "--yes"],
        env={"VLLM_EMBED_API_KEY": server.api_key},
    )
    assert result.exit_code == 0, result.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert server.api_key not in result.output
    return result


def test_langchain_qdrant_migrated_by_the_cli_then_queried(tmp_path, vllm_server, make_client):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_qdrant import QdrantVectorStore

    db = tmp_path / "qdrant_db"
    QdrantVectorStore.from_texts(
        FACTS,
        DeterministicFakeEmbedding(size=OLD_DIM),
        metadatas=[{"n": i} for i in range(len(FACTS))],
        path=str(db),
        collection_name="knowledge",
    ).client.close()
    result = _migrate(db, vllm_server)
    assert "verified     vllm-embed, qdrant-client" in result.output
    assert (tmp_path / f"qdrant_db.d{OLD_DIM}.bak").is_dir()

    store = QdrantVectorStore.from_existing_collection(
        collection_name="knowledge",
        embedding=live_embeddings(make_client(vllm_server)),
        path=str(db),
    )
    try:
        hit = store.similarity_search(QUESTION, k=1)[0]
        assert hit.page_content == FACTS[ANSWER] and hit.metadata["n"] == ANSWER
        info = store.client.get_collection("knowledge")
        space = EmbeddingSpace.from_json(info.config.metadata[SPACE_KEY])
        assert (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)
    finally:
        store.client.close()


def test_langchain_sqlitevec_migrated_by_the_cli_then_queried(tmp_path, vllm_server, make_client):
    from langchain_community.vectorstores import SQLiteVec
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = tmp_path / "vec.db"
    connection = _langchain_connection(db)
    SQLiteVec("facts", connection, DeterministicFakeEmbedding(size=OLD_DIM)).add_texts(
        FACTS, metadatas=[{"n": i} for i in range(len(FACTS))]
    )
    connection.close()
    result = _migrate(db, vllm_server)
    assert "verified     vllm-embed, sqlite-vec" in result.output

    connection = _langchain_connection(db)
    try:
        store = SQLiteVec("facts", connection, live_embeddings(make_client(vllm_server)))
        hit = store.similarity_search(QUESTION, k=1)[0]
    finally:
        connection.close()
    assert hit.page_content == FACTS[ANSWER] and hit.metadata == {"n": ANSWER}
    space = read_sidecar(db)
    assert space is not None and (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)


def test_langchain_qdrant_alias_switch_on_live_vllm_then_queried(
    tmp_path, vllm_server, make_client
):
    """The alias switch Qdrant server URLs use, on a local-mode client (no Qdrant server
    here), embedding with the live vLLM; LangChain then answers through the old name."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_qdrant import QdrantVectorStore

    from vllm_embed.migrate import space_of_client
    from vllm_embed.migrate._qdrant_switch import migrate_qdrant_collection

    store = QdrantVectorStore.from_texts(
        FACTS,
        DeterministicFakeEmbedding(size=OLD_DIM),
        metadatas=[{"n": i} for i in range(len(FACTS))],
        path=str(tmp_path / "qdrant_db"),
        collection_name="knowledge",
    )
    qc = store.client
    try:
        client = make_client(vllm_server)
        report = migrate_qdrant_collection(qc, "knowledge", client, space_of_client(client))
        assert (report.old_dim, report.new_dim) == (OLD_DIM, MINILM_DIM)
        aliases = {a.alias_name: a.collection_name for a in qc.get_aliases().aliases}
        assert aliases == {"knowledge": report.new_collection}
        assert qc.count(report.backup).count == len(FACTS)
        live = QdrantVectorStore(
            client=qc, collection_name="knowledge", embedding=live_embeddings(client)
        )
        hit = live.similarity_search(QUESTION, k=1)[0]
        assert hit.page_content == FACTS[ANSWER] and hit.metadata["n"] == ANSWER
        space = EmbeddingSpace.from_json(qc.get_collection("knowledge").config.metadata[SPACE_KEY])
        assert (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)
    finally:
        qc.close()
