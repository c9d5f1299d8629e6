"""``vllm-embed migrate <Milvus Lite db> --out <new db>`` (fake vLLM): the migrated database
is written elsewhere, opened and queried through LangChain's ``Milvus``; the original is
left byte for byte as it was (no backup: nothing was replaced)."""

from __future__ import annotations

from click.testing import CliRunner
from milvus_support import close_milvus, make_langchain_milvus, milvus_rows
from stores_support import embedded_texts, listing, texts

from vllm_embed.cli import main
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM


def test_out_writes_a_new_milvus_lite_database_and_leaves_the_original(tmp_path, fake_vllm):
    from langchain_core.embeddings import Embeddings
    from langchain_milvus import Milvus

    db = make_langchain_milvus(tmp_path / "milvus.db", n=10)
    before = milvus_rows(db, "LangChainCollection")
    original = listing(db)
    out = tmp_path / "elsewhere" / "migrated.db"
    result = CliRunner().invoke(
        main,
        ["migrate", str(db), "--out", str(out), "--base-url", BASE_URL, "--api-key", API_KEY],
    )
    assert result.exit_code == 0, result.output
    assert f": {out}" in result.stdout and "backup" not in result.stdout
    assert embedded_texts(fake_vllm)[1:] == texts(10)
    assert listing(db) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "milvus.db"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["migrated.db"]
    assert milvus_rows(out, "LangChainCollection") == before

    class Fake(Embeddings):
        def embed_documents(self, docs):  # type: ignore[no-untyped-def]
            return [fake_vector(d, DIM).tolist() for d in docs]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    store = Milvus(embedding_function=Fake(), connection_args={"uri": str(out)})
    try:
        hit = store.similarity_search(texts(10)[4], k=1)[0]
        assert (hit.page_content, hit.metadata["n"]) == (texts(10)[4], 4)
    finally:
        store.client.close()
        close_milvus(out)
    assert listing(db) == original
