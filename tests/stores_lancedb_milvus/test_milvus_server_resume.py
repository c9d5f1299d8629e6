"""A whole-database migration of a real Milvus server (no ``--collection``) killed after
one collection's switch: the same command resumes its work directory (nothing is embedded
again), does not switch that collection again and switches the rest. The first migration
(renames + aliases) is killed during the second collection's switch (renamed, no alias
yet: that switch is finished too), the next one, to another dimension, which reads the
collections the completed first one made (alias moves), before it. A LlamaIndex collection
(switched by two renames: its new collection takes its name) beside a plain one, killed
after its renames (before its mark says done, then again at the other's switch), is known
by its collection id and read from its backup; the migration after those reads what
readers find (backups left out). A state no switch leaves is not guessed: a named
error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from milvus_server_support import (
    MilvusDB,
    resolved_dim,
    same_rows,
    server_langchain,
    server_llamaindex,
    server_rows,
)
from stores_support import OLD_DIM, embedded_texts, old_vectors, texts

from vllm_embed.cli import main
from vllm_embed.migrate import _milvus_server, _milvus_switch
from vllm_embed.migrate._milvus_switch import MARK
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.milvus_server import TEST_PASSWORD
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM

SMALL = 8  # the second migration's Matryoshka size


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VLLM_EMBED_MIGRATE_STATE", str(tmp_path / "state"))


def _run(uri: str, *args: str) -> Result:
    result = CliRunner().invoke(
        main, ["migrate", uri, *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )
    assert TEST_PASSWORD not in result.output and API_KEY not in result.output
    return result


def _killed_at_call(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, at: int = 2
) -> list[str]:
    """Make call ``at`` of ``owner.name`` (a client method or a function taking the client
    first) a kill (KeyboardInterrupt, as the CLI gets on SIGINT); returns the collections
    it was called for."""
    real = getattr(owner, name)
    calls: list[str] = []

    def spy(client: Any, collection: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(collection)
        if len(calls) == at:
            raise KeyboardInterrupt
        return real(client, collection, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _langchain_hit(db: MilvusDB, collection: str, text: str) -> Any:
    from langchain_core.embeddings import Embeddings
    from langchain_milvus import Milvus

    class Fake(Embeddings):
        def embed_documents(self, docs: list[str]) -> list[list[float]]:
            return [fake_vector(d, DIM).tolist() for d in docs]

        def embed_query(self, query: str) -> list[float]:
            return fake_vector(query, DIM).tolist()

    store = Milvus(
        embedding_function=Fake(),
        connection_args={"uri": db.server.uri, "token": db.server.token},
        collection_name=collection,
    )
    try:
        return store.similarity_search(text, k=1)[0]
    finally:
        store.client.close()


def test_whole_database_killed_between_two_switches_the_same_command_finishes(
    milvus_default, fake_vllm, monkeypatch, tmp_path
):
    from pymilvus import MilvusClient

    db = milvus_default
    a, b = f"{db.prefix}a", f"{db.prefix}b"
    client = db.client()
    try:  # the whole default database is migrated: only this test's collections are in it
        assert client.list_collections() == []
    finally:
        client.close()
    server_langchain(db, n=4, collection=a)
    server_langchain(db, n=6, collection=b)
    before = {a: server_rows(db, a), b: server_rows(db, b)}
    new = {a: f"{a}_vllm_d{DIM}", b: f"{b}_vllm_d{DIM}"}

    # the first migration: a renamed to its backup and aliased, then the kill during b's
    # switch (b renamed to its backup, its alias not made yet)
    with monkeypatch.context() as m:
        calls = _killed_at_call(m, MilvusClient, "create_alias")
        killed = _run(db.uri_with_credentials)
    assert killed.exit_code == 130, killed.output
    assert calls == [new[a], new[b]]
    assert resolved_dim(db, a) == (new[a], DIM)
    client = db.client()
    try:
        assert not client.has_collection(b) and client.has_collection(f"{b}_vllm_bak_d{OLD_DIM}")
    finally:
        client.close()
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(4) + texts(6))

    # not the state a switch leaves (no backup's mark names a's new collection): no guess
    backup_a = f"{a}_vllm_bak_d{OLD_DIM}"
    client = db.client()
    try:
        mark = client.describe_collection(backup_a)["properties"][MARK]
        assert json.loads(mark) == {"done": True, "finish": "alias", "name": a, "new": new[a]}
        client.alter_collection_properties(
            backup_a, {MARK: json.dumps({**json.loads(mark), "new": "elsewhere"})}
        )
    finally:
        client.close()
    refused = _run(db.uri_with_credentials)
    assert refused.exit_code == 1, refused.output
    assert (
        f"{new[a]!r} is the new collection of {a!r} that an interrupted migration made and "
        f"switched in" in refused.output
    )
    assert "Nothing was changed. Remove that work directory" in refused.output
    client = db.client()
    try:
        client.alter_collection_properties(backup_a, {MARK: mark})
    finally:
        client.close()

    fake_vllm.reset()
    again = _run(db.uri_with_credentials)
    assert again.exit_code == 0, again.output
    assert f"collection {a}, {b}); 10 records" in again.stderr
    assert embedded_texts(fake_vllm) == []  # resumed: not one row embedded again
    assert (
        f"switched     '{a}' -> collection '{new[a]}' (dimension {OLD_DIM} -> {DIM}); "
        "switched by the interrupted run\n" in again.stdout
    )
    assert (
        f"switched     '{b}' -> collection '{new[b]}' (dimension {OLD_DIM} -> {DIM}); the "
        "switch an interrupted run began is finished\n" in again.stdout
    )
    for name in (a, b):
        backup = f"{name}_vllm_bak_d{OLD_DIM}"
        assert f"backup       collection '{backup}'" in again.stdout
        assert same_rows(server_rows(db, backup), before[name])
        assert resolved_dim(db, name) == (new[name], DIM)
    hit = _langchain_hit(db, b, texts(6)[5])
    assert (hit.page_content, hit.metadata["pk"]) == (texts(6)[5], "id-5")
    hit = _langchain_hit(db, a, texts(4)[2])
    assert (hit.page_content, hit.metadata["pk"]) == (texts(4)[2], "id-2")
    assert not list((tmp_path / "state").glob("*.vllm-embed-migrate"))
    migrated = {name: server_rows(db, name) for name in (a, b)}

    # the next migration (completed first one: its new collections are the source), to
    # another dimension: alias moves only; killed at b's switch again
    fake_vllm.reset()
    with monkeypatch.context() as m:
        calls = _killed_at_call(m, _milvus_server, "switch")
        killed = _run(db.uri_with_credentials, "--dimensions", str(SMALL))
    assert killed.exit_code == 130, killed.output
    assert calls == [new[a], new[b]]
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(texts(4) + texts(6))
    assert resolved_dim(db, a) == (f"{a}_vllm_d{SMALL}", SMALL)
    assert resolved_dim(db, b) == (new[b], DIM)

    fake_vllm.reset()
    again = _run(db.uri_with_credentials, "--dimensions", str(SMALL))
    assert again.exit_code == 0, again.output
    assert embedded_texts(fake_vllm) == []
    assert (
        f"switched     '{a}' -> collection '{a}_vllm_d{SMALL}' (dimension {DIM} -> {SMALL}); "
        "switched by the interrupted run\n" in again.stdout
    )
    for name in (a, b):
        assert f"backup       collection '{new[name]}'" in again.stdout
        assert same_rows(server_rows(db, new[name]), migrated[name])
        assert resolved_dim(db, name) == (f"{name}_vllm_d{SMALL}", SMALL)
    np.testing.assert_allclose(
        server_rows(db, b)[3]["vector"], fake_vector(texts(6)[3], DIM, SMALL), atol=1e-6
    )
    client = db.client()  # (server_rows closes pymilvus' shared connection)
    try:
        for name, n, row in ((a, 4, 1), (b, 6, 4)):
            client.load_collection(name)
            hits = client.search(
                name,
                data=[fake_vector(texts(n)[row], DIM, SMALL).tolist()],
                limit=1,
                output_fields=["text"],
            )
            assert hits[0][0]["entity"]["text"] == texts(n)[row]
    finally:
        client.close()


def _refused(db: MilvusDB, says: str) -> None:
    refused = _run(db.uri_with_credentials)
    assert refused.exit_code == 1, refused.output
    assert says in refused.output, refused.output
    assert "Nothing was changed. Remove that work directory" in refused.output


def test_llamaindex_collection_renamed_in_before_the_kill_is_read_from_its_backup(
    milvus_db, fake_vllm, monkeypatch, tmp_path
):
    """The whole database (no --collection): nodes (LlamaIndex: two renames) is switched
    first; its new collection has its name when the run is killed before notes' switch."""
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.milvus import MilvusVectorStore

    db = milvus_db
    server_llamaindex(db, n=4)  # "nodes", written by LlamaIndex's MilvusVectorStore
    client = db.client()
    try:
        client.create_collection("notes", dimension=OLD_DIM, consistency_level="Strong")
        vectors = old_vectors(3, seed=1)
        client.insert(
            "notes",
            [{"id": i, "vector": vectors[i].tolist(), "text": t} for i, t in enumerate(texts(3))],
        )
        client.flush("notes")
    finally:
        client.close()
    before = {name: server_rows(db, name) for name in ("nodes", "notes")}
    backup = {name: f"{name}_vllm_bak_d{OLD_DIM}" for name in ("nodes", "notes")}
    made = {name: f"{name}_vllm_d{DIM}" for name in ("nodes", "notes")}

    # killed after nodes' two renames (old -> backup, new -> "nodes"), before its mark
    # says done; notes' switch not begun
    with monkeypatch.context() as m:
        calls = _killed_at_call(m, _milvus_switch, "_set_mark")
        killed = _run(db.uri_with_credentials)
    assert killed.exit_code == 130, killed.output
    assert calls == ["nodes", backup["nodes"]]
    sent = embedded_texts(fake_vllm)[1:]
    assert len(sent) == 7
    assert resolved_dim(db, "nodes") == ("nodes", DIM)  # the new collection, renamed in
    client = db.client()
    try:
        assert sorted(client.list_collections()) == sorted(
            ["nodes", backup["nodes"], "notes", made["notes"]]
        )
        mark = json.loads(client.describe_collection(backup["nodes"])["properties"][MARK])
        assert mark == {
            "done": False,
            "finish": "rename",
            "name": "nodes",
            "new": made["nodes"],
            "made": made["nodes"],
            "made_id": client.describe_collection("nodes")["collection_id"],
        }
        # a second backup marked the same way: which one was the source is not guessed
        client.create_collection(f"{backup['nodes']}_2", dimension=4)
        client.alter_collection_properties(f"{backup['nodes']}_2", {MARK: json.dumps(mark)})
    finally:
        client.close()
    _refused(
        db,
        f"made {made['nodes']!r} for 'nodes' and renamed it to 'nodes', but several backups "
        f"are marked as 'nodes' switched to it ({backup['nodes']}, {backup['nodes']}_2)",
    )
    client = db.client()  # (the run closed pymilvus' shared connection)
    try:
        client.drop_collection(f"{backup['nodes']}_2")
        # "nodes" another collection than the one the run made: not guessed either
        client.rename_collection("nodes", "moved_vllm_bak_d1")  # (a name the reader skips)
        client.create_collection("nodes", dimension=4)
    finally:
        client.close()
    _refused(db, "but 'nodes' is another collection now (not the one it made; its old ")
    client = db.client()
    try:
        client.drop_collection("nodes")
        client.rename_collection("moved_vllm_bak_d1", "nodes")
    finally:
        client.close()

    # the rerun reads nodes from its backup (nothing embedded), says its switch is done, and
    # is killed at notes' switch: after nodes' whole switch, as the next rerun finds it
    fake_vllm.reset()
    with monkeypatch.context() as m:
        calls = _killed_at_call(m, _milvus_server, "switch", at=1)
        killed = _run(db.uri_with_credentials)
    assert killed.exit_code == 130, killed.output
    assert calls == ["notes"] and embedded_texts(fake_vllm) == []
    assert resolved_dim(db, "notes") == ("notes", OLD_DIM)
    client = db.client()
    try:
        done = json.loads(client.describe_collection(backup["nodes"])["properties"][MARK])
        assert done == {**mark, "new": "nodes", "done": True}
    finally:
        client.close()

    fake_vllm.reset()
    again = _run(db.uri_with_credentials)
    assert again.exit_code == 0, again.output
    assert "collection nodes, notes); 7 records" in again.stderr
    assert embedded_texts(fake_vllm) == []  # resumed: nodes read from its backup, as before
    assert (
        f"switched     'nodes' -> collection 'nodes' (dimension {OLD_DIM} -> {DIM}); "
        "switched by the interrupted run\n" in again.stdout
    )
    assert (
        f"switched     'notes' -> collection '{made['notes']}' (dimension {OLD_DIM} -> {DIM})\n"
        in again.stdout
    )
    for name in ("nodes", "notes"):
        assert f"backup       collection '{backup[name]}'" in again.stdout
        assert same_rows(server_rows(db, backup[name]), before[name])
    assert resolved_dim(db, "nodes") == ("nodes", DIM)
    assert resolved_dim(db, "notes") == (made["notes"], DIM)
    client = db.client()
    try:
        assert sorted(client.list_collections()) == sorted(
            ["nodes", backup["nodes"], made["notes"], backup["notes"]]
        )
        client.load_collection("notes")
        hit = client.search(
            "notes", data=[fake_vector(texts(3)[1], DIM).tolist()], limit=1, output_fields=["text"]
        )
        assert hit[0][0]["entity"]["text"] == texts(3)[1]
    finally:
        client.close()
    assert not list((tmp_path / "state").glob("*.vllm-embed-migrate"))  # work dir removed

    async def reopen() -> Any:  # LlamaIndex finds "nodes" in list_collections()
        return MilvusVectorStore(
            uri=db.server.uri,
            token=db.server.token,
            db_name=db.name,
            collection_name="nodes",
            dim=DIM,
        )

    embedded = f"file_name: f2.txt\n\n{texts(4)[2]}"  # what LlamaIndex embeds for node-2
    assert embedded in sent
    li = asyncio.run(reopen())
    try:
        got = li.query(VectorStoreQuery(query_embedding=fake_vector(embedded, DIM).tolist()))
        assert got.ids[0] == "node-2"
        assert got.nodes[0].get_content() == texts(4)[2]
    finally:
        li.client.close()

    # a later migration (no unfinished work directory): the collections readers find are
    # the source, the backups (and nothing else) are left out; notes' alias flips, nodes is
    # renamed again
    fake_vllm.reset()
    later = _run(db.uri_with_credentials)
    assert later.exit_code == 0, later.output
    assert "collection nodes, notes); 7 records" in later.stderr
    assert sorted(embedded_texts(fake_vllm)[1:]) == sorted(sent)
    assert resolved_dim(db, "nodes") == ("nodes", DIM)
    assert resolved_dim(db, "notes") == (f"{made['notes']}_2", DIM)
    client = db.client()
    try:
        assert sorted(client.list_collections()) == sorted(
            [
                "nodes",
                backup["nodes"],
                f"nodes_vllm_bak_d{DIM}",
                made["notes"],
                f"{made['notes']}_2",
                backup["notes"],
            ]
        )
    finally:
        client.close()
