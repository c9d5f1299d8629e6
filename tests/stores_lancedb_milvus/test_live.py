"""LanceDB stores migrated on the live vLLM server (all-MiniLM-L6-v2, 384 d), then queried
through LangChain / LlamaIndex: a question finds the record that answers it. One live
server for the session (vllm_embed_testing.vllm; a server that will not start fails the
run with its log, nothing skips)."""

from __future__ import annotations

from click.testing import CliRunner
from live_support import ANSWER, FACTS, MINILM_DIM, OLD_DIM, QUESTION

from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace


def test_langchain_lancedb_migrated_by_the_cli_then_searched(tmp_path, vllm_server, make_client):
    import lancedb
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

    db = tmp_path / "lancedb"
    old = LanceDB(uri=str(db), embedding=DeterministicFakeEmbedding(size=OLD_DIM))
    old.add_texts(FACTS, metadatas=[{"n": i} for i in range(len(FACTS))])
    result = CliRunner().invoke(
        main,
        ["migrate", str(db), "--base-url", vllm_server.base_url, "--yes"],
        env={"VLLM_EMBED_API_KEY": vllm_server.api_key},
    )
    assert result.exit_code == 0, result.output
    assert "format: LanceDB (LangChain LanceDB; table vectorstore)" in result.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert "verified     vllm-embed, lancedb" in result.output
    assert (tmp_path / f"lancedb.d{OLD_DIM}.bak").is_dir()
    assert vllm_server.api_key not in result.output

    client = make_client(vllm_server)

    class Live(Embeddings):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            return client.embed_documents(list(texts)).tolist()

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return client.embed_query(text).tolist()

    store = LanceDB(uri=str(db), embedding=Live(), table_name="vectorstore")
    hit = store.similarity_search(QUESTION, k=1)[0]
    assert hit.page_content == FACTS[ANSWER] and hit.metadata == {"n": ANSWER}
    table = lancedb.connect(str(db)).open_table("vectorstore")
    space = EmbeddingSpace.from_json(table.schema.metadata[SPACE_KEY.encode()].decode())
    assert (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)


def test_llamaindex_lancedb_migrated_then_queried(tmp_path, vllm_server, make_client):
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    db = tmp_path / "lancedb"
    old = LanceDBVectorStore(uri=str(db), table_name="facts")
    old.add(
        [
            TextNode(text=f, id_=f"fact-{i}", embedding=[float(i + 1)] * OLD_DIM)
            for i, f in enumerate(FACTS)
        ]
    )
    client = make_client(vllm_server)
    result = migrate_store(open_store(db), client)
    assert (result.old_dim, result.new_dim) == (OLD_DIM, MINILM_DIM)
    assert result.verified_with == ["vllm-embed", "lancedb"]

    store = LanceDBVectorStore(uri=str(db), table_name="facts")
    query = client.embed_query(QUESTION).tolist()
    got = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=1))
    assert got.ids == [f"fact-{ANSWER}"] and got.nodes[0].get_content() == FACTS[ANSWER]


def test_langchain_milvus_lite_migrated_by_the_cli_then_searched(
    tmp_path, vllm_server, make_client
):
    from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
    from langchain_milvus import Milvus
    from milvus_support import close_milvus

    db = tmp_path / "milvus.db"
    old = Milvus(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        connection_args={"uri": str(db)},
        auto_id=True,
    )
    old.add_texts(FACTS, metadatas=[{"n": i} for i in range(len(FACTS))])
    old.client.close()
    close_milvus(db)
    result = CliRunner().invoke(
        main,
        ["migrate", str(db), "--base-url", vllm_server.base_url, "--yes"],
        env={"VLLM_EMBED_API_KEY": vllm_server.api_key},
    )
    assert result.exit_code == 0, result.output
    assert "format: Milvus Lite (LangChain Milvus; collection LangChainCollection)" in (
        result.output
    )
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert "verified     vllm-embed, pymilvus" in result.output
    assert (tmp_path / f"milvus.db.d{OLD_DIM}.bak").is_dir()
    assert vllm_server.api_key not in result.output

    client = make_client(vllm_server)

    class Live(Embeddings):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            return client.embed_documents(list(texts)).tolist()

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return client.embed_query(text).tolist()

    store = Milvus(embedding_function=Live(), connection_args={"uri": str(db)})
    try:
        hit = store.similarity_search(QUESTION, k=1)[0]
        assert hit.page_content == FACTS[ANSWER] and hit.metadata["n"] == ANSWER
        described = store.client.describe_collection("LangChainCollection")
        space = EmbeddingSpace.from_json(described["properties"][SPACE_KEY])
        assert (space.model, space.dimension) == (vllm_server.model, MINILM_DIM)
        assert described["auto_id"] is True
    finally:
        store.client.close()
        close_milvus(db)
