"""LanceDB and Milvus (Lite file, server) stores migrated on the live vLLM server
(all-MiniLM-L6-v2, 384 d), then queried through LangChain / LlamaIndex: a question finds
the record that answers it. One live server for the session (vllm_embed_testing.vllm; a
server that will not start fails the run with its log, nothing skips)."""

from __future__ import annotations

from click.testing import CliRunner
from live_support import ANSWER, FACTS, MINILM_DIM, OLD_DIM, QUESTION, live_embeddings

from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed_testing.migration import migrate_on_live_server


def test_langchain_lancedb_migrated_by_the_cli_then_searched(tmp_path, vllm_server, make_client):
    import lancedb
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = tmp_path / "lancedb"
    old = LanceDB(uri=str(db), embedding=DeterministicFakeEmbedding(size=OLD_DIM))
    old.add_texts(FACTS, metadatas=[{"n": i} for i in range(len(FACTS))])
    migrate_on_live_server(
        vllm_server, db, described="LanceDB (LangChain LanceDB; table vectorstore)",
        old_dim=OLD_DIM, new_dim=MINILM_DIM, verified="vllm-embed, lancedb",
    )  # fmt: skip

    live = live_embeddings(make_client(vllm_server))
    store = LanceDB(uri=str(db), embedding=live, table_name="vectorstore")
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
    from langchain_core.embeddings import DeterministicFakeEmbedding
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
    migrate_on_live_server(
        vllm_server, db,
        described="Milvus Lite (LangChain Milvus; collection LangChainCollection)",
        old_dim=OLD_DIM, new_dim=MINILM_DIM, verified="milvus-lite",
    )  # fmt: skip

    live = live_embeddings(make_client(vllm_server))
    store = Milvus(embedding_function=live, connection_args={"uri": str(db)})
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


def test_langchain_milvus_server_migrated_by_the_cli_then_searched(
    tmp_path, vllm_server, make_client, milvus_default
):
    from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
    from langchain_milvus import Milvus

    db, name = milvus_default, milvus_default.prefix
    args = {"uri": db.server.uri, "token": db.server.token}
    old = Milvus(
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        connection_args=args,
        collection_name=name,
        consistency_level="Strong",
        auto_id=False,
    )
    ids = [f"fact-{i}" for i in range(len(FACTS))]
    old.add_texts(FACTS, metadatas=[{"n": i} for i in range(len(FACTS))], ids=ids)
    old.client.close()
    result = CliRunner().invoke(
        main,
        ["migrate", db.server.uri, "--collection", name, "--base-url", vllm_server.base_url],
        env={
            "VLLM_EMBED_API_KEY": vllm_server.api_key,
            "MILVUS_TOKEN": db.server.token,
            "VLLM_EMBED_MIGRATE_STATE": str(tmp_path / "state"),
        },
    )
    assert result.exit_code == 0, result.output
    assert f"(LangChain Milvus; collection {name})" in result.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in result.output
    assert f"switched     '{name}' -> collection '{name}_vllm_d{MINILM_DIM}'" in result.output
    assert vllm_server.api_key not in result.output and db.server.token not in result.output

    client = make_client(vllm_server)

    class Live(Embeddings):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            return client.embed_documents(list(texts)).tolist()

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return client.embed_query(text).tolist()

    store = Milvus(embedding_function=Live(), connection_args=args, collection_name=name)
    try:  # the app's collection name now resolves to the new collection
        hit = store.similarity_search(QUESTION, k=1)[0]
        assert hit.page_content == FACTS[ANSWER] and hit.metadata["n"] == ANSWER
    finally:
        store.client.close()
