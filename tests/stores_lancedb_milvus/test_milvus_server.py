"""``vllm-embed migrate`` on a real Milvus server (embedded Milvus 2.3.5, one per session):
collections written by LangChain, LlamaIndex and plain pymilvus, migrated on the fake vLLM,
switched with aliases, then searched through the same library; faults (the embedding
server gone, a kill while filling, a kill between the first switch's rename and alias or
LlamaIndex's two renames: the same command finishes it); auto-id collections kept with their
keys. (A whole database migrated, then again with its backups left out, and runs killed
between two collections' switches: test_milvus_server_resume.py; ``doctor`` on a server:
tests/doctor/test_lancedb_milvus.py.)"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from click.testing import CliRunner, Result
from milvus_server_support import resolved_dim as _dim
from milvus_server_support import (
    same_rows,
    server_langchain,
    server_llamaindex,
    server_plain,
    server_rows,
)
from milvus_support import spy_writes
from stores_support import OLD_DIM, embedded_texts, texts

from vllm_embed import MigrationError, StoreFormatError
from vllm_embed.cli import main
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store
from vllm_embed.migrate._milvus_server_fill import IN_FLIGHT
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.milvus_server import TEST_PASSWORD
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

PASSWORD = TEST_PASSWORD


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VLLM_EMBED_MIGRATE_STATE", str(tmp_path / "state"))


def _run(*args: str) -> Result:
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def _no_secret(result: Result) -> None:
    assert PASSWORD not in result.output and API_KEY not in result.output


class _Fake:
    def embed_documents(self, docs):  # type: ignore[no-untyped-def]
        return [fake_vector(d, DIM).tolist() for d in docs]

    def embed_query(self, text):  # type: ignore[no-untyped-def]
        return fake_vector(text, DIM).tolist()


def test_langchain_collection_switched_by_alias_then_searched_with_langchain(
    milvus_default, fake_vllm
):
    db = milvus_default
    lc = db.prefix
    from langchain_core.embeddings import Embeddings
    from langchain_milvus import Milvus

    server_langchain(db, n=10, collection=lc)
    before = server_rows(db, lc)
    result = _run(db.uri_with_credentials, "--collection", lc)
    assert result.exit_code == 0, result.output
    _no_secret(result)
    assert (
        f"format: Milvus server {db.uri} (LangChain Milvus; collection "
        f"{lc}); 10 records" in result.stderr
    )
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     vllm-embed, pymilvus" in result.stdout
    new = f"{lc}_vllm_d{DIM}"
    backup = f"{lc}_vllm_bak_d{OLD_DIM}"
    assert f"switched     '{lc}' -> collection '{new}'" in result.stdout
    assert f"backup       collection '{backup}'" in result.stdout
    assert embedded_texts(fake_vllm)[1:] == texts(10)
    # a reader holding the old name sees the new collection; the backup is the original
    assert _dim(db, lc) == (new, DIM)
    assert same_rows(server_rows(db, backup), before)
    after = server_rows(db, lc)
    assert [{k: v for k, v in r.items() if k != "vector"} for r in after] == [
        {k: v for k, v in r.items() if k != "vector"} for r in before
    ]
    np.testing.assert_allclose(after[7]["vector"], fake_vector(texts(10)[7], DIM), atol=1e-6)
    client = db.client()
    try:
        space = EmbeddingSpace.from_json(client.describe_collection(new)["properties"][SPACE_KEY])
    finally:
        client.close()
    assert (space.model, space.dimension) == (MODEL, DIM)

    class Fake(_Fake, Embeddings):
        pass

    store = Milvus(
        embedding_function=Fake(),
        connection_args={"uri": db.server.uri, "token": db.server.token, "db_name": db.name},
        collection_name=lc,
    )
    try:
        hit = store.similarity_search(texts(10)[7], k=1)[0]
        assert hit.page_content == texts(10)[7]
        assert (hit.metadata["n"], hit.metadata["source"]) == (7, "doc2.md")
    finally:
        store.client.close()

    # the second migration flips the alias: no rename, the first migration's collection
    # is the backup now
    again = _run(db.uri_with_credentials, "--collection", lc)
    assert again.exit_code == 0, again.output
    assert f"format: Milvus server {db.uri} (LangChain Milvus; collection " in (again.stderr)
    assert f"backup       collection '{new}'" in again.stdout
    assert _dim(db, lc) == (f"{new}_2", DIM)
    assert same_rows(server_rows(db, new), after)
    assert same_rows(server_rows(db, backup), before)


def test_llamaindex_collection_embeds_what_llamaindex_embeds_then_queried(
    milvus_db, fake_vllm, client
):
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.milvus import MilvusVectorStore

    server_llamaindex(milvus_db, n=6)
    store = open_store(milvus_db.uri_with_credentials)
    assert store.format == (
        f"Milvus server {milvus_db.uri} (LlamaIndex MilvusVectorStore; collection nodes)"
    )
    assert PASSWORD not in repr(store.address) and PASSWORD not in store.format
    migrate_store(store, client)
    assert (
        store.switched[0]
        == f"switched     'nodes' -> collection 'nodes' (dimension {OLD_DIM} -> {DIM})"
    )
    assert _dim(milvus_db, "nodes") == ("nodes", DIM)  # renamed in: LlamaIndex sees no alias
    assert _dim(milvus_db, f"nodes_vllm_bak_d{OLD_DIM}") == (f"nodes_vllm_bak_d{OLD_DIM}", OLD_DIM)
    sent = embedded_texts(fake_vllm)[1:]
    assert sent[0] == f"file_name: f0.txt\n\n{texts(6)[0]}"  # page is excluded from embeds

    async def reopen():  # type: ignore[no-untyped-def]
        return MilvusVectorStore(
            uri=milvus_db.server.uri,
            token=milvus_db.server.token,
            db_name=milvus_db.name,
            collection_name="nodes",
            dim=DIM,
        )

    li = asyncio.run(reopen())
    try:
        got = li.query(VectorStoreQuery(query_embedding=fake_vector(sent[3], DIM).tolist()))
        assert got.ids[0] == "node-3"
        assert got.nodes[0].get_content() == texts(6)[3]
        assert got.nodes[0].metadata == {"file_name": "f3.txt", "page": 3}
    finally:
        li.client.close()


def test_plain_collection_keeps_partitions_index_params_aliases(milvus_db, fake_vllm, monkeypatch):
    server_plain(milvus_db, n=8)
    notes = server_rows(milvus_db, "notes")
    before = server_rows(milvus_db, "docs")
    monkeypatch.setenv("MILVUS_TOKEN", milvus_db.server.token)  # credentials from the env
    no_field = _run(milvus_db.uri, "--collection", "docs")
    assert no_field.exit_code != 0
    assert "collection 'docs' has no field 'text'; name the text field with --text-field" in (
        no_field.output
    )
    result = _run(milvus_db.uri, "--text-field", "body", "--collection", "docs_live")
    assert result.exit_code == 0, result.output
    _no_secret(result)
    assert f"format: Milvus server {milvus_db.uri} (collection docs_live); 8 records" in (
        result.stderr
    )
    new = f"docs_live_vllm_d{DIM}"
    assert _dim(milvus_db, "docs_live") == (new, DIM)
    assert _dim(milvus_db, "docs") == ("docs", OLD_DIM)  # readers of the name: untouched
    assert same_rows(server_rows(milvus_db, "notes"), notes)
    assert same_rows(server_rows(milvus_db, "docs"), before)
    after = server_rows(milvus_db, "docs_live")
    assert [(r["key"], r["body"], r["extra"], r["_partition"]) for r in after] == [
        (r["key"], r["body"], r["extra"], r["_partition"]) for r in before
    ]
    assert {r["_partition"] for r in after} == {"_default", "archive"}
    client = milvus_db.client()
    try:
        index = client.describe_index(new, client.list_indexes(new)[0])
        assert (index["index_type"], index["metric_type"]) == ("HNSW", "COSINE")
        assert (index["M"], index["efConstruction"]) == ("8", "64")
        props = client.describe_collection(new)["properties"]
        assert props["collection.ttl.seconds"] == "0" and SPACE_KEY in props
        client.load_collection("docs_live")
        hits = client.search(
            "docs_live",
            data=[fake_vector(texts(8)[6], DIM).tolist()],
            limit=1,
            anns_field="vec",
            output_fields=["key"],
        )
        assert hits[0][0]["key"] == 6
    finally:
        client.close()


def test_server_gone_mid_run_leaves_the_collection_untouched_then_resume(
    milvus_default, fake_vllm, failing_after, client
):
    db = milvus_default
    lc = db.prefix
    server_langchain(db, n=10, collection=lc)
    before = server_rows(db, lc)
    failing_after(fake_vllm, 1 + 8)
    with pytest.raises(MigrationError, match="run the same command again to resume"):
        migrate_store(
            open_store(db.uri_with_credentials, collection=lc),
            client,
            MigrationOptions(chunk_rows=4),
        )
    assert same_rows(server_rows(db, lc), before)
    checker = db.client()
    try:
        # the new collection is filled while the rows are embedded: it may be there,
        # half-filled (the journaled chunks' rows at most), and nothing points at it
        made = [n for n in checker.list_collections() if n.startswith(lc)]
        assert set(made) <= {lc, f"{lc}_vllm_d16"} and lc in made
        assert checker.list_aliases(lc)["aliases"] == []
        if f"{lc}_vllm_d16" in made:
            assert checker.list_aliases(f"{lc}_vllm_d16")["aliases"] == []
            checker.load_collection(f"{lc}_vllm_d16")
            got = checker.query(f"{lc}_vllm_d16", filter="", output_fields=["count(*)"])
            assert got[0]["count(*)"] <= 8
    finally:
        checker.close()
    finished = embedded_texts(fake_vllm)[1:]
    assert len(finished) == 8

    fake_vllm.side_effect = fake_vllm.side_effect.answer
    fake_vllm.reset()
    result = migrate_store(
        open_store(db.uri_with_credentials, collection=lc), client, MigrationOptions(chunk_rows=4)
    )
    assert (result.resumed, result.embedded_now) == (8, 2)
    assert not set(embedded_texts(fake_vllm)) & set(finished)
    resumed = server_rows(db, lc)

    server_langchain(db, n=10, collection=f"{lc}ref")
    migrate_store(open_store(db.uri_with_credentials, collection=f"{lc}ref"), client)
    assert same_rows(resumed, server_rows(db, f"{lc}ref"))


def test_killed_while_filling_goes_on_in_the_half_filled_collection(
    milvus_default, fake_vllm, client, monkeypatch
):
    db = milvus_default
    lc = db.prefix
    from vllm_embed.migrate._milvus_server import MilvusServerStore

    server_langchain(db, n=10, collection=lc)
    before = server_rows(db, lc)
    monkeypatch.setenv("MILVUS_TOKEN", db.server.token)
    monkeypatch.setattr(MilvusServerStore, "batch_rows", 3)
    written, kill = spy_writes(monkeypatch, kill_after=2)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db.uri, collection=lc), client)
    assert same_rows(server_rows(db, lc), before)
    assert written == [("insert", ["id-0", "id-1", "id-2"]), ("insert", ["id-3", "id-4", "id-5"])]

    fake_vllm.reset()
    written.clear()
    kill["after"] = -1
    result = migrate_store(open_store(db.uri, collection=lc), client)
    assert embedded_texts(fake_vllm) == [] and result.resumed == 10
    # up to IN_FLIGHT batches past the last mark may be in already: upserted
    assert IN_FLIGHT == 2
    assert written == [("upsert", ["id-6", "id-7", "id-8"]), ("upsert", ["id-9"])]
    rows = server_rows(db, lc)
    assert [r["pk"] for r in rows] == [f"id-{i}" for i in range(10)]  # no duplicate
    assert all(r["vector"].shape == (DIM,) for r in rows)


def test_killed_with_inserts_in_flight_upserts_them_on_resume(
    milvus_default, fake_vllm, client, monkeypatch
):
    """Two batches written but not marked (in flight at the kill) are upserted by the
    resumed run, not inserted again: no key twice."""
    from pymilvus import MilvusClient

    db = milvus_default
    lc = db.prefix
    from vllm_embed.migrate._milvus_server import MilvusServerStore

    server_langchain(db, n=10, collection=lc)
    monkeypatch.setenv("MILVUS_TOKEN", db.server.token)
    monkeypatch.setattr(MilvusServerStore, "batch_rows", 3)
    real = {"insert": MilvusClient.insert, "upsert": MilvusClient.upsert}
    written: list[tuple[str, list[str]]] = []
    killed = {"on": True}

    def spy(kind: str):
        def call(self, name, data, *args, **kwargs):
            keys = [r["pk"] for r in data]
            if killed["on"] and keys[0] == "id-9":
                raise KeyboardInterrupt  # never sent
            written.append((kind, keys))
            got = real[kind](self, name, data, *args, **kwargs)
            if killed["on"] and keys[0] == "id-3":
                raise KeyboardInterrupt  # sent, never marked (id-6.. goes in meanwhile)
            return got

        return call

    monkeypatch.setattr(MilvusClient, "insert", spy("insert"))
    monkeypatch.setattr(MilvusClient, "upsert", spy("upsert"))
    with pytest.raises(KeyboardInterrupt):
        migrate_store(open_store(db.uri, collection=lc), client)
    assert sorted(written) == [
        ("insert", ["id-0", "id-1", "id-2"]),
        ("insert", ["id-3", "id-4", "id-5"]),
        ("insert", ["id-6", "id-7", "id-8"]),
    ]
    written.clear()
    killed["on"] = False
    migrate_store(open_store(db.uri, collection=lc), client)
    assert IN_FLIGHT * 3 == 6  # the rows past the mark (3) that may be in: upserted
    assert written == [
        ("upsert", ["id-3", "id-4", "id-5"]),
        ("upsert", ["id-6", "id-7", "id-8"]),
        ("insert", ["id-9"]),
    ]
    rows = server_rows(db, lc)
    assert [r["pk"] for r in rows] == [f"id-{i}" for i in range(10)]  # no key twice


def test_named_errors_and_dry_run(milvus_default, fake_vllm):
    db = milvus_default
    lc = db.prefix
    server_langchain(db, n=4, collection=lc)
    host = db.server.uri.split("://", 1)[1]
    wrong = _run(f"http://vllm_tests:wrong-{PASSWORD}-x@{host}", "--collection", lc)
    assert wrong.exit_code != 0 and "cannot connect to the Milvus server" in wrong.output
    assert f"wrong-{PASSWORD}-x" not in wrong.output
    with pytest.raises(StoreFormatError, match="no collection or alias 'missing'"):
        open_store(db.uri_with_credentials, collection="missing")
    out = _run(db.uri_with_credentials, "--collection", lc, "--out", "elsewhere")
    assert out.exit_code != 0 and "--out does not apply to a Milvus server" in out.output
    before = server_rows(db, lc)
    dry = _run(db.uri_with_credentials, "--collection", lc, "--dry-run")
    assert dry.exit_code == 0, dry.output
    _no_secret(dry)
    assert f"dimension    {OLD_DIM} -> {DIM}" in dry.stdout and "estimate" in dry.stdout
    assert same_rows(server_rows(db, lc), before)


def test_killed_between_rename_and_alias_the_same_command_finishes_the_switch(
    milvus_default, fake_vllm, monkeypatch, tmp_path
):
    import json

    from pymilvus import MilvusClient

    from vllm_embed.migrate._milvus_switch import MARK

    db = milvus_default
    lc = db.prefix
    server_langchain(db, n=6, collection=lc)
    before = server_rows(db, lc)
    new, backup = f"{lc}_vllm_d{DIM}", f"{lc}_vllm_bak_d{OLD_DIM}"

    def killed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # the kill: after the rename, before the alias

    with monkeypatch.context() as m:
        m.setattr(MilvusClient, "create_alias", killed)
        killed_run = _run(db.uri_with_credentials, "--collection", lc)
    assert killed_run.exit_code == 130 and "run the same command again" in killed_run.output
    client = db.client()
    try:
        assert sorted(n for n in client.list_collections() if n.startswith(lc)) == [
            backup,
            new,
        ]
        assert not client.describe_collection(new).get("aliases")
        # a second backup waiting for the same name: ambiguous, so nothing is guessed
        client.create_collection(f"{backup}_2", dimension=4)
        client.alter_collection_properties(
            f"{backup}_2", {MARK: json.dumps({"name": lc, "new": new, "done": False})}
        )
    finally:
        client.close()
    ambiguous = _run(db.uri_with_credentials, "--collection", lc)
    assert ambiguous.exit_code != 0
    assert "several backups wait for an interrupted switch" in ambiguous.output
    assert f"{backup}, {backup}_2" in ambiguous.output
    client = db.client()  # (the run closed pymilvus' shared connection)
    try:
        client.drop_collection(f"{backup}_2")
    finally:
        client.close()

    fake_vllm.reset()
    again = _run(db.uri_with_credentials, "--collection", lc)
    assert again.exit_code == 0, again.output
    _no_secret(again)
    assert embedded_texts(fake_vllm) == []  # resumed: nothing embedded again
    assert (
        f"switched     '{lc}' -> collection '{new}' (dimension {OLD_DIM} -> {DIM}); the "
        "switch an interrupted run began is finished" in again.stdout
    )
    assert f"backup       collection '{backup}'" in again.stdout
    assert _dim(db, lc) == (new, DIM)
    assert same_rows(server_rows(db, backup), before)
    assert [r["pk"] for r in server_rows(db, lc)] == [r["pk"] for r in before]
    client = db.client()
    try:
        mark = json.loads(client.describe_collection(backup)["properties"][MARK])
        assert mark == {"done": True, "finish": "alias", "name": lc, "new": new}
        assert MARK not in client.describe_collection(new)["properties"]
    finally:
        client.close()
    assert not list((tmp_path / "state").glob("*.vllm-embed-migrate"))  # work dir removed


def test_auto_id_collection_keeps_its_keys_in_a_collection_without_auto_id(
    milvus_default, fake_vllm
):
    from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
    from langchain_milvus import Milvus

    db = milvus_default
    lc = f"{db.prefix}auto"
    auto = Milvus(  # keys made by the server
        embedding_function=DeterministicFakeEmbedding(size=OLD_DIM),
        connection_args={"uri": db.server.uri, "token": db.server.token},
        collection_name=lc,
        auto_id=True,
        consistency_level="Strong",
    )
    auto.add_texts(texts(5), metadatas=[{"n": i} for i in range(5)])
    auto.client.close()
    before = server_rows(db, lc)
    result = _run(db.uri_with_credentials, "--collection", lc)
    assert result.exit_code == 0, result.output
    assert (
        f"keys         '{lc}' keeps its auto-id keys: the new collection has auto_id=False, "
        "so inserts must give 'pk'" in result.stdout
    )
    after = server_rows(db, lc)
    assert [{k: v for k, v in r.items() if k != "vector"} for r in after] == [
        {k: v for k, v in r.items() if k != "vector"} for r in before
    ]
    np.testing.assert_allclose(after[2]["vector"], fake_vector(after[2]["text"], DIM), atol=1e-6)
    client = db.client()
    try:
        old = client.describe_collection(f"{lc}_vllm_bak_d{OLD_DIM}")
        got = client.describe_collection(lc)
    finally:
        client.close()
    assert (old["auto_id"], got["auto_id"]) == (True, False)
    # the same fields; only the primary key's auto-id flag and the vector's size changed
    assert [(f["name"], f["type"]) for f in got["fields"]] == [
        (f["name"], f["type"]) for f in old["fields"]
    ]

    class Fake(_Fake, Embeddings):
        pass

    store = Milvus(
        embedding_function=Fake(),
        connection_args={"uri": db.server.uri, "token": db.server.token},
        collection_name=lc,
        auto_id=False,
    )
    try:
        hit = store.similarity_search(texts(5)[3], k=1)[0]
        assert (hit.page_content, hit.metadata["n"]) == (texts(5)[3], 3)
        assert hit.metadata["pk"] == before[3]["pk"]  # the server-made key, kept
    finally:
        store.client.close()


def test_llamaindex_killed_between_its_two_renames_whole_database_rerun_finishes(
    milvus_db, fake_vllm, monkeypatch
):
    """LlamaIndex's switch is two renames; the database named without --collection."""
    import json

    from pymilvus import MilvusClient

    from vllm_embed.migrate._milvus_switch import MARK

    server_llamaindex(milvus_db, n=4)
    before = server_rows(milvus_db, "nodes")
    real = MilvusClient.rename_collection
    renames: list[tuple[str, str]] = []

    def rename(self, old, new, *args, **kwargs):  # type: ignore[no-untyped-def]
        if renames:
            raise KeyboardInterrupt  # the kill: the old one renamed, the new one not yet
        renames.append((old, new))
        return real(self, old, new, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(MilvusClient, "rename_collection", rename)
        killed = _run(milvus_db.uri_with_credentials)
    assert killed.exit_code == 130, killed.output
    assert renames == [("nodes", f"nodes_vllm_bak_d{OLD_DIM}")]
    fake_vllm.reset()
    again = _run(milvus_db.uri_with_credentials)
    assert again.exit_code == 0, again.output
    assert "collection nodes); 4 records" in again.stderr
    assert embedded_texts(fake_vllm) == []
    assert "the switch an interrupted run began is finished" in again.stdout
    assert _dim(milvus_db, "nodes") == ("nodes", DIM)  # renamed in, as LlamaIndex needs
    assert same_rows(server_rows(milvus_db, f"nodes_vllm_bak_d{OLD_DIM}"), before)
    client = milvus_db.client()
    try:
        assert sorted(client.list_collections()) == ["nodes", f"nodes_vllm_bak_d{OLD_DIM}"]
        mark = client.describe_collection(f"nodes_vllm_bak_d{OLD_DIM}")["properties"][MARK]
        assert json.loads(mark)["finish"] == "rename" and json.loads(mark)["done"] is True
    finally:
        client.close()
