"""``vllm-embed migrate`` against the live vLLM server, one test per store format.

Each store is made by its real library with random old vectors; after the migration
the real library loads it, every vector has the server's dimension (384 for minilm),
and a query with the server's own vector for a record's text finds that record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "migrate"))

from migrate_support import (
    OLD_DIM,
    captions,
    make_dvd_store,
    make_langchain_store,
    make_lightrag_store,
    make_llamaindex_store,
)

from vllm_embed.cli import main
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store
from vllm_embed.migrate.nanovectordb import decode_lightrag_vector

MINILM_DIM = 384


def _nano(path: Path, dim: int):  # type: ignore[no-untyped-def]
    from nano_vectordb import NanoVectorDB

    return NanoVectorDB(dim, storage_file=str(path))


def test_dvd_database_json(tmp_path, vllm_server, make_client):
    client = make_client(vllm_server)
    path = make_dvd_store(tmp_path / "database.json", n=30)
    result = migrate_store(open_store(path), client, MigrationOptions(chunk_rows=8))
    assert (result.old_dim, result.new_dim, result.records) == (OLD_DIM, MINILM_DIM, 30)
    assert result.verified_with == ["nano-vectordb"]
    db = _nano(path, MINILM_DIM)
    assert len(db) == 30
    text = captions(30)[17]
    hit = db.query(client.embed_documents([text])[0], top_k=1)[0]
    assert hit["__id__"] == "clip-17"
    assert hit["__metrics__"] > 0.999


def test_lightrag_vdb_chunks(tmp_path, vllm_server, make_client):
    client = make_client(vllm_server)
    path = make_lightrag_store(tmp_path)
    migrate_store(open_store(path), client)
    document = json.loads(path.read_bytes())
    assert document["embedding_dim"] == MINILM_DIM
    record = document["data"][5]
    expected = client.embed_documents([record["content"]])[0]
    np.testing.assert_allclose(decode_lightrag_vector(record["vector"]), expected, atol=2e-3)
    hit = _nano(path, MINILM_DIM).query(expected, top_k=1)[0]
    assert hit["__id__"] == record["__id__"]


def test_llamaindex_persist_dir(tmp_path, vllm_server, make_client):
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import MetadataMode, QueryBundle

    client = make_client(vllm_server)
    directory = make_llamaindex_store(tmp_path / "storage")
    result = migrate_store(open_store(directory), client)
    assert result.new_dim == MINILM_DIM
    storage = StorageContext.from_defaults(persist_dir=str(directory))
    index = load_index_from_storage(storage, embed_model=MockEmbedding(embed_dim=MINILM_DIM))
    node = next(n for n in storage.docstore.docs.values() if "Eiffel" in n.get_content())
    content = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert content.startswith("file_name: paris.txt")
    query = QueryBundle("q", embedding=client.embed_documents([content])[0].tolist())
    hits = index.as_retriever(similarity_top_k=1).retrieve(query)
    assert hits[0].node.node_id == node.node_id
    assert hits[0].score is not None and hits[0].score > 0.999


def test_langchain_dump(tmp_path, vllm_server, make_client):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    client = make_client(vllm_server)
    path = make_langchain_store(tmp_path / "lc.json")
    migrate_store(open_store(path), client)
    loaded = InMemoryVectorStore.load(str(path), DeterministicFakeEmbedding(size=MINILM_DIM))
    assert {len(v["vector"]) for v in loaded.store.values()} == {MINILM_DIM}
    vector = client.embed_documents(["grass is green"])[0].tolist()
    assert loaded.similarity_search_by_vector(vector, k=1)[0].id == "c"


def test_cli_dry_run_then_migrate(tmp_path, vllm_server):
    path = make_dvd_store(tmp_path / "database.json", n=12)
    original = path.read_bytes()
    server = ["--base-url", vllm_server.base_url, "--api-key", vllm_server.api_key]
    runner = CliRunner()

    dry = runner.invoke(main, ["migrate", str(path), *server, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM} (probed, model minilm)" in dry.stdout
    assert path.read_bytes() == original

    run = runner.invoke(main, ["migrate", str(path), *server, "--yes"])
    assert run.exit_code == 0, run.output
    assert f"dimension    {OLD_DIM} -> {MINILM_DIM}" in run.stdout
    assert vllm_server.api_key not in run.output
    assert (tmp_path / f"database.d{OLD_DIM}.bak.json").read_bytes() == original
    assert len(_nano(path, MINILM_DIM)) == 12


def test_matryoshka_dimensions(tmp_path, vllm_matryoshka_server, make_client):
    client = make_client(vllm_matryoshka_server, dimensions=128)
    path = make_dvd_store(tmp_path / "database.json", n=10)
    result = migrate_store(open_store(path), client, MigrationOptions(dimensions=128))
    assert result.new_dim == 128
    db = _nano(path, 128)
    hit = db.query(client.embed_documents([captions(10)[3]])[0], top_k=1)[0]
    assert hit["__id__"] == "clip-3"
