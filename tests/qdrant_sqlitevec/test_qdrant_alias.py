"""The alias switch a Qdrant server URL is migrated with (`migrate_qdrant_collection`), run
against qdrant-client's local mode (it implements collection aliases with the server's
rules; no Qdrant server binary can be installed here, so its HTTP transport is not run),
on collections written by LangChain, LlamaIndex and plain qdrant-client, then read back
through the same libraries. The fake vLLM embeds."""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from qdrant_sqlitevec_support import (
    COLLECTION,
    make_langchain_qdrant,
    make_llamaindex_qdrant,
    make_plain_qdrant,
    point_id,
)
from stores_support import OLD_DIM, texts

from vllm_embed import EmbeddingClient, MissingTextError, QdrantConnectionError
from vllm_embed._retry import RetryPolicy
from vllm_embed.cli import main
from vllm_embed.migrate import space_of_client
from vllm_embed.migrate._qdrant_switch import BACKUP_KEY, migrate_qdrant_collection
from vllm_embed.migrate._space import SPACE_KEY, EmbeddingSpace
from vllm_embed.migrate.llamaindex import node_embed_text
from vllm_embed_testing.fake_server import fake_vector
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


@pytest.fixture
def open_client() -> Iterator[Any]:
    """``open_client(path)``: a local-mode QdrantClient, closed after the test."""
    from qdrant_client import QdrantClient

    made: list[Any] = []

    def factory(path: Path) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            made.append(QdrantClient(path=str(path)))
        return made[-1]

    yield factory
    for c in made:
        c.close()


def _content(qc: Any, name: str) -> dict[str, Any]:
    """Every point of ``name`` (payload, vector directions) and its vector configuration."""
    points, _ = qc.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
    out: dict[str, Any] = {}
    for p in points:
        vectors = p.vector if isinstance(p.vector, dict) else {"": p.vector}
        out[str(p.id)] = (
            p.payload,
            {
                k: _direction(v) if isinstance(v, list) else v.model_dump()
                for k, v in vectors.items()
            },
        )
    return {"points": out, "config": qc.get_collection(name).config.params.model_dump()}


def _direction(vector: list[float]) -> list[float]:
    """The unit vector, rounded: a Cosine vector may be stored normalised or not."""
    v = np.asarray(vector, dtype=np.float64)
    return [float(x) for x in np.round(v / np.linalg.norm(v), 5)]


def _aliases(qc: Any) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in qc.get_aliases().aliases}


def _names(qc: Any) -> list[str]:
    return sorted(c.name for c in qc.get_collections().collections)


def test_langchain_collection_becomes_an_alias_of_the_new_collection(
    tmp_path, fake_vllm, client, open_client
):
    from langchain_core.embeddings import Embeddings
    from langchain_qdrant import QdrantVectorStore

    qc = open_client(make_langchain_qdrant(tmp_path / "db"))
    before = _content(qc, COLLECTION)
    qc.update_collection_aliases(  # another reader's alias of the same collection
        [_create("docs_live", COLLECTION)]
    )
    report = migrate_qdrant_collection(qc, COLLECTION, client, space_of_client(client))
    assert (report.old_dim, report.new_dim, report.points) == (OLD_DIM, DIM, 10)
    assert report.new_collection.startswith("docs__vllm_embed_")
    assert report.backup.startswith("docs__vllm_embed_backup_")
    # the name readers use is now an alias of the new collection (and so is the other alias)
    assert _aliases(qc) == {"docs": report.new_collection, "docs_live": report.new_collection}
    assert _names(qc) == sorted([report.new_collection, report.backup])
    # the backup holds the old points exactly, with the old configuration
    assert _content(qc, report.backup) == before
    meta = qc.get_collection(report.backup).config.metadata
    assert meta[BACKUP_KEY] == COLLECTION
    info = qc.get_collection(COLLECTION)
    assert info.config.params.vectors[""].size == DIM  # LangChain's unnamed vector, as a dict
    assert info.config.params.vectors[""].distance.value == "Cosine"
    space = EmbeddingSpace.from_json(info.config.metadata[SPACE_KEY])
    assert (space.model, space.dimension) == (MODEL, DIM)

    class Fake(Embeddings):
        def embed_documents(self, items):  # type: ignore[no-untyped-def]
            return [fake_vector(t, DIM).tolist() for t in items]

        def embed_query(self, text):  # type: ignore[no-untyped-def]
            return fake_vector(text, DIM).tolist()

    store = QdrantVectorStore(client=qc, collection_name=COLLECTION, embedding=Fake())
    hit = store.similarity_search(texts(10)[3], k=1)[0]
    assert hit.page_content == texts(10)[3]
    assert hit.metadata == {"n": 3, "topic": "t", "_id": point_id(3), "_collection_name": "docs"}


def test_llamaindex_collection_queried_with_llamaindex(tmp_path, fake_vllm, client, open_client):
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    qc = open_client(make_llamaindex_qdrant(tmp_path / "db"))
    stored = qc.retrieve(COLLECTION, [point_id(2)], with_payload=True)[0].payload
    embed_text = node_embed_text(stored)  # what LlamaIndex embeds: metadata, then the text
    assert texts(6)[2] in embed_text
    report = migrate_qdrant_collection(qc, COLLECTION, client, space_of_client(client))
    assert report.points == 6 and _aliases(qc)["docs"] == report.new_collection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        store = QdrantVectorStore(collection_name=COLLECTION, client=qc)
    got = store.query(
        VectorStoreQuery(query_embedding=fake_vector(embed_text, DIM).tolist(), similarity_top_k=2)
    )
    assert got.ids is not None and got.ids[0] == point_id(2)
    assert got.nodes is not None and got.nodes[0].metadata == {"source": "file2.md"}


def test_plain_collection_keeps_the_other_vectors_and_the_configuration(
    tmp_path, fake_vllm, client, open_client
):
    qc = open_client(make_plain_qdrant(tmp_path / "db"))
    before = _content(qc, COLLECTION)
    report = migrate_qdrant_collection(
        qc, COLLECTION, client, space_of_client(client), text_field="body", vector_name="dense"
    )
    after = _content(qc, COLLECTION)
    vectors = after["config"]["vectors"]
    assert vectors["dense"]["size"] == DIM
    assert vectors["dense"]["distance"] == "Dot"
    assert vectors["dense"]["hnsw_config"] == {
        **before["config"]["vectors"]["dense"]["hnsw_config"]
    }
    assert (
        vectors["dense"]["quantization_config"]
        == (before["config"]["vectors"]["dense"]["quantization_config"])
    )
    assert vectors["title"] == before["config"]["vectors"]["title"]
    assert after["config"]["sparse_vectors"] == before["config"]["sparse_vectors"]
    for pid, (payload, vecs) in before["points"].items():
        new_payload, new_vecs = after["points"][pid]
        assert new_payload == payload
        assert new_vecs["title"] == vecs["title"] and new_vecs["bm25"] == vecs["bm25"]
        assert np.allclose(new_vecs["dense"], fake_vector(payload["body"], DIM), atol=1e-4)
    assert qc.get_collection(COLLECTION).config.metadata["owner"] == "tests"
    hits = qc.query_points(
        COLLECTION, query=fake_vector(texts(8)[5], DIM).tolist(), using="dense", limit=1
    ).points
    assert hits[0].id == 5
    assert _content(qc, report.backup) == before


def test_a_reader_holding_the_name_sees_the_new_size_and_a_second_migration_flips_the_alias(
    tmp_path, fake_vllm, client, open_client, monkeypatch
):
    qc = open_client(make_plain_qdrant(tmp_path / "db"))
    # a reader resolves the name on every call: hold it across the migration
    reader = lambda: qc.get_collection(COLLECTION).config.params.vectors["dense"].size  # noqa: E731
    assert reader() == OLD_DIM
    first = migrate_qdrant_collection(
        qc, COLLECTION, client, space_of_client(client), text_field="body", vector_name="dense"
    )
    assert reader() == DIM
    calls: list[list[Any]] = []
    real = qc.update_collection_aliases

    def recording(ops: list[Any], **kwargs: Any) -> Any:
        calls.append(list(ops))
        return real(ops, **kwargs)

    monkeypatch.setattr(qc, "update_collection_aliases", recording)
    with EmbeddingClient(BASE_URL, api_key=API_KEY, dimensions=8) as small:
        second = migrate_qdrant_collection(qc, COLLECTION, small, space_of_client(small))
    assert reader() == 8
    # one alias call: delete + create, so the name never resolves to nothing
    assert len(calls) == 1
    assert [type(op).__name__ for op in calls[0]] == [
        "DeleteAliasOperation",
        "CreateAliasOperation",
    ]
    assert second.backup == first.new_collection  # the first result is the backup now
    assert second.source == first.new_collection and second.old_dim == DIM
    assert _aliases(qc) == {COLLECTION: second.new_collection}
    assert qc.count(COLLECTION).count == qc.count(first.new_collection).count == 8
    # the vector name and text field were recorded: the second run needed neither
    hits = qc.query_points(
        COLLECTION, query=fake_vector(texts(8)[1], DIM, 8).tolist(), using="dense", limit=1
    ).points
    assert hits[0].id == 1
    # the same model again: nothing to do
    again = migrate_qdrant_collection(qc, COLLECTION, client, space_of_client(client))
    assert not again.unchanged  # another dimension than the current one: migrated
    unchanged = migrate_qdrant_collection(qc, COLLECTION, client, space_of_client(client))
    assert unchanged.unchanged and _aliases(qc)[COLLECTION] == again.new_collection


def test_server_gone_mid_run_leaves_the_old_collection_and_resume_equals_a_whole_run(
    tmp_path, fake_vllm, failing_after, open_client
):
    from vllm_embed import APIConnectionError

    make_langchain_qdrant(tmp_path / "a")
    make_langchain_qdrant(tmp_path / "b")
    qc = open_client(tmp_path / "a")
    before = _content(qc, COLLECTION)
    failing_after(fake_vllm, 1 + 4)  # the dimension probe, then the first batch of 4
    with EmbeddingClient(BASE_URL, api_key=API_KEY, retry=RetryPolicy(max_attempts=1)) as c:
        space = space_of_client(c)
        with pytest.raises(APIConnectionError):
            migrate_qdrant_collection(qc, COLLECTION, c, space, batch=4)
    # untouched: still a collection of that name, same points; the half-built one has 4
    assert _aliases(qc) == {} and _content(qc, COLLECTION) == before
    partial = [n for n in _names(qc) if n != COLLECTION]
    assert len(partial) == 1 and qc.count(partial[0]).count == 4
    fake_vllm.side_effect = fake_vllm.side_effect.answer
    sent_before = len(fake_vllm.calls)
    qb = open_client(tmp_path / "b")
    with EmbeddingClient(BASE_URL, api_key=API_KEY) as c:
        resumed = migrate_qdrant_collection(qc, COLLECTION, c, space, batch=4)
        embedded = sum(
            len(json.loads(call.request.content)["input"])
            for call in fake_vllm.calls[sent_before:]
            if call.request.url.path.endswith("/embeddings")
        )
        whole = migrate_qdrant_collection(qb, COLLECTION, c, space)
    assert resumed.resumed == 4 and resumed.new_collection == partial[0]
    assert embedded == 6  # the resumed run embedded only the points not written yet
    assert resumed.new_collection == whole.new_collection
    assert _content(qc, COLLECTION) == _content(qb, COLLECTION)
    assert _content(qc, resumed.backup) == before == _content(qb, whole.backup)


def test_killed_between_dropping_the_collection_and_creating_the_alias_then_finished(
    tmp_path, fake_vllm, client, open_client, monkeypatch
):
    qc = open_client(make_langchain_qdrant(tmp_path / "db"))
    before = _content(qc, COLLECTION)
    real = qc.update_collection_aliases

    def killed(ops: list[Any], **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # the process dies after delete_collection, before the alias

    monkeypatch.setattr(qc, "update_collection_aliases", killed)
    space = space_of_client(client)
    with pytest.raises(KeyboardInterrupt):
        migrate_qdrant_collection(qc, COLLECTION, client, space)
    assert not qc.collection_exists(COLLECTION)  # the name resolves to nothing right now
    backups = [n for n in _names(qc) if "backup" in n]
    assert len(backups) == 1 and _content(qc, backups[0]) == before
    monkeypatch.setattr(qc, "update_collection_aliases", real)
    sent = len(fake_vllm.calls)
    report = migrate_qdrant_collection(qc, COLLECTION, client, space)
    assert len(fake_vllm.calls) == sent  # nothing embedded again
    assert report.switch == "finished (resumed)" and report.backup == backups[0]
    assert _aliases(qc) == {COLLECTION: report.new_collection}
    assert qc.get_collection(COLLECTION).config.params.vectors[""].size == DIM


def test_points_without_text_are_a_named_error_and_nothing_is_written(
    tmp_path, fake_vllm, client, open_client
):
    qc = open_client(make_plain_qdrant(tmp_path / "db", missing=2))
    before = _content(qc, COLLECTION)
    with pytest.raises(MissingTextError, match="2 of 8 points of Qdrant 'docs' have no text") as e:
        migrate_qdrant_collection(
            qc, COLLECTION, client, space_of_client(client), text_field="body", vector_name="dense"
        )
    assert e.value.ids == ["0", "1"]
    assert _names(qc) == [COLLECTION] and _aliases(qc) == {}
    assert _content(qc, COLLECTION) == before
    embedded = [c for c in fake_vllm.calls if c.request.url.path.endswith("/embeddings")]
    assert len(embedded) == 1  # only the dimension probe


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_a_named_error_without_the_key(monkeypatch):
    from vllm_embed.cli._qdrant import connect_qdrant

    secret = "qdrant-secret-key-5f1c0a"
    monkeypatch.setenv("QDRANT_API_KEY", secret)
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(QdrantConnectionError, match="cannot reach a Qdrant server") as e:
        connect_qdrant(url, timeout=2)
    assert secret not in str(e.value) and e.value.__cause__ is None
    # the command line: a Qdrant URL (port 6333 / a qdrant host) with nothing listening
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 6333)) != 0, "something listens on 6333"
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            "http://127.0.0.1:6333",
            "--collection",
            "docs",
            "--base-url",
            BASE_URL,
            "--api-key",
            API_KEY,
            "--yes",
        ],
    )
    assert result.exit_code != 0
    assert "cannot reach a Qdrant server at http://127.0.0.1:6333" in result.output
    assert secret not in result.output and API_KEY not in result.output


def test_local_directory_collection_named_by_its_alias_keeps_its_aliases(
    tmp_path, fake_vllm, open_client
):
    db = make_langchain_qdrant(tmp_path / "db")
    qc = open_client(db)
    qc.update_collection_aliases([_create("current", COLLECTION), _create("docs_v1", COLLECTION)])
    qc.close()
    result = CliRunner().invoke(
        main,
        [
            "migrate",
            str(db),
            "--collection",
            "current",
            "--base-url",
            BASE_URL,
            "--api-key",
            API_KEY,
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.output
    qc = open_client(db)
    assert _aliases(qc) == {"current": COLLECTION, "docs_v1": COLLECTION}
    assert qc.get_collection("current").config.params.vectors[""].size == DIM
    hits = qc.query_points("current", query=fake_vector(texts(10)[7], DIM).tolist(), limit=1)
    assert str(hits.points[0].id) == point_id(7)


def _create(alias: str, collection: str) -> Any:
    from qdrant_client import models

    return models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
    )


def test_the_command_line_on_a_server_url_dry_run_then_migrate(
    tmp_path, fake_vllm, monkeypatch, open_client
):
    """The URL branch of ``vllm-embed migrate`` end to end, its client swapped for a
    local-mode one (the HTTP transport is the one part not run)."""

    qc = open_client(make_plain_qdrant(tmp_path / "db"))
    before = _content(qc, COLLECTION)
    qc.close = lambda: None  # the command closes its client; the test still reads it
    try:
        _command_line_run(qc, before, monkeypatch)
    finally:
        del qc.close  # the real close, for the fixture's teardown


def _command_line_run(qc: Any, before: dict[str, Any], monkeypatch: Any) -> None:
    from vllm_embed.cli import _qdrant

    secret = "qdrant-secret-key-77e0"
    monkeypatch.setenv("QDRANT_API_KEY", secret)
    monkeypatch.setattr(_qdrant, "connect_qdrant", lambda url: qc)
    url = "https://user:pw@qdrant.example:6333"
    args = [
        "migrate",
        url,
        "--collection",
        COLLECTION,
        "--vector-name",
        "dense",
        "--text-field",
        "body",
        "--base-url",
        BASE_URL,
        "--api-key",
        API_KEY,
        "--yes",
    ]
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "server       Qdrant https://***@qdrant.example:6333" in dry.output
    assert "found        Qdrant 'docs' (collection; qdrant-client, vector 'dense')" in dry.output
    assert f"would migrate 8 points, dimension {OLD_DIM} -> {DIM}" in dry.output
    assert "dry run: nothing written" in dry.output
    assert _names(qc) == [COLLECTION] and _content(qc, COLLECTION) == before
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    new = _aliases(qc)[COLLECTION]
    assert f"migrated     docs -> collection {new}" in result.output
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.output
    backup = next(n for n in _names(qc) if "backup" in n)
    assert f"backup       collection {backup}" in result.output
    assert f"delete_collection('{backup}')" in result.output
    for hidden in (secret, API_KEY, "user:pw"):
        assert hidden not in result.output and hidden not in dry.output
    missing = CliRunner().invoke(main, ["migrate", url, "--base-url", BASE_URL, "--yes"])
    assert missing.exit_code != 0 and "--collection" in missing.output
    assert f"{COLLECTION} -> {new}" in missing.output  # the names found are listed
