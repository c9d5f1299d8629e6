"""A whole-database migration of a real Milvus server (no ``--collection``) killed after
one collection's switch: the same command resumes its work directory (nothing is embedded
again), does not switch that collection again and switches the rest. The first migration
(renames + aliases) is killed during the second collection's switch (renamed, no alias
yet: that switch is finished too), the next one, to another dimension, which reads the
collections the completed first one made (alias moves), before it. A state no switch
leaves is not guessed: a named error."""

from __future__ import annotations

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
    server_rows,
)
from stores_support import OLD_DIM, embedded_texts, texts

from vllm_embed.cli import main
from vllm_embed.migrate import _milvus_server
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


def _killed_at_second_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[str]:
    """Make the second call of ``owner.name`` (a client method or a function taking the
    client first) a kill (KeyboardInterrupt, as the CLI gets on SIGINT); returns the
    collections it was called for."""
    real = getattr(owner, name)
    calls: list[str] = []

    def spy(client: Any, collection: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(collection)
        if len(calls) == 2:
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
        calls = _killed_at_second_call(m, MilvusClient, "create_alias")
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
        calls = _killed_at_second_call(m, _milvus_server, "switch")
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
