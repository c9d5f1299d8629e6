"""embed_dataset on a real two-node local Ray cluster against fake servers."""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from vllm_embed import ConfigValueError, EmbeddingClient, InvalidInputError, InvalidRowError
from vllm_embed_ray import embed_dataset
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

DIM = 16  # the fake_servers fixture's dimension

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _dataset(n: int, bad: dict[int, Any] | None = None, blocks: int = 12) -> Any:
    """n rows (id, text, source) in several blocks (a block is one actor task)."""
    import ray.data

    bad = bad or {}
    rows = [
        {"id": i, "text": bad.get(i, f"chunk {i} of the corpus"), "source": f"doc-{i % 7}"}
        for i in range(n)
    ]
    table = pa.Table.from_pylist(rows)
    step = -(-n // blocks)
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, n, step)])


def _collect(ds: Any) -> pa.Table:
    import ray

    table = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    return table.sort_by("id")


def _vectors(table: pa.Table, column: str = "embedding") -> np.ndarray:
    col = table.column(column).combine_chunks()
    assert col.type.extension_name == "arrow.fixed_shape_tensor", col.type
    assert list(col.type.shape) == [DIM]
    col = col.storage
    assert pa.types.is_fixed_size_list(col.type), col.type
    assert col.type.value_type == pa.float32()
    return col.flatten().to_numpy().reshape(len(col), col.type.list_size)


def _urls(servers: list[FakeEmbeddingServer]) -> list[str]:
    return [s.base_url for s in servers]


def _embedder_actors(exclude: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Ray Data's map actors (from the GCS: this cluster runs without a dashboard)."""
    from ray._private import state

    return [
        a
        for a in state.actors().values()
        if "MapWorker" in a["ActorClassName"] and a["ActorID"] not in exclude
    ]


@pytest.mark.servers(2)
def test_rows_equal_the_plain_client_row_for_row(fake_servers: list[FakeEmbeddingServer]) -> None:
    n = 3000
    before = {a["ActorID"] for a in _embedder_actors()}
    out = embed_dataset(
        _dataset(n),
        base_url=_urls(fake_servers),
        concurrency=2,
        batch_size=125,
        num_cpus=1.5,  # nodes have 2 CPUs: one actor per node
        instructions=None,
    )
    table = _collect(out)

    assert table.column("id").to_pylist() == list(range(n))  # every row exactly once
    assert table.column_names == ["id", "text", "source", "embedding"]
    assert table.column("source").to_pylist() == [f"doc-{i % 7}" for i in range(n)]
    texts = table.column("text").to_pylist()
    with EmbeddingClient(_urls(fake_servers), instructions=None) as client:
        expected = client.embed_documents(texts)
    got = _vectors(table)
    assert got.shape == (n, DIM)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[17], fake_vector(texts[17], DIM))
    # the work went to both servers, from actors on both nodes
    assert all(s.stats()["vectors"] >= n // 4 for s in fake_servers)
    nodes = {a["Address"]["NodeID"] for a in _embedder_actors(exclude=before)}
    assert len(nodes) == 2, nodes


@pytest.mark.servers(1)
def test_numpy_batches_are_two_dimensional_float32(fake_servers: list[FakeEmbeddingServer]) -> None:
    out = embed_dataset(_dataset(40), base_url=fake_servers[0].base_url, role="query")
    batch = out.take_batch(40, batch_format="numpy")
    assert batch["embedding"].dtype == np.float32
    assert batch["embedding"].shape == (40, DIM)


@pytest.mark.servers(2, rate_limit=1500)
def test_a_worker_killed_mid_job_still_gives_every_row_once(
    fake_servers: list[FakeEmbeddingServer],
) -> None:
    n = 6000
    out = embed_dataset(
        _dataset(n),
        base_url=_urls(fake_servers),
        concurrency=2,
        batch_size=200,
        instructions=None,
        num_cpus=1.5,
    )
    tables: list[pa.Table] = []
    killed: int | None = None
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        tables.append(batch)
        if killed is None:
            pids = [a["Pid"] for a in _embedder_actors() if a["State"] == "ALIVE" and a["Pid"]]
            assert pids, "no live embedding actor found"
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
    assert killed is not None
    table = pa.concat_tables(tables).sort_by("id")
    assert table.column("id").to_pylist() == list(range(n))
    got = _vectors(table)
    for i in (0, n // 2, n - 1):
        np.testing.assert_array_equal(got[i], fake_vector(f"chunk {i} of the corpus", DIM))
    restarted = [a for a in _embedder_actors() if a["NumRestarts"] >= 1]
    assert restarted, "the killed actor was never restarted"


@pytest.mark.servers(2, rate_limit=1500)
def test_a_server_killed_mid_job_fails_over(fake_servers: list[FakeEmbeddingServer]) -> None:
    n = 6000
    doomed, survivor = fake_servers
    out = embed_dataset(
        _dataset(n),
        base_url=_urls(fake_servers),
        concurrency=2,
        batch_size=200,
        instructions=None,
        timeout=10,
    )
    tables: list[pa.Table] = []
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        tables.append(batch)
        if doomed.process.poll() is None:
            doomed.process.kill()
            doomed.process.wait()
            before = survivor.stats()["vectors"]
    table = pa.concat_tables(tables).sort_by("id")
    assert table.column("id").to_pylist() == list(range(n))
    got = _vectors(table)
    texts = table.column("text").to_pylist()
    expected = np.stack([fake_vector(t, DIM) for t in texts])
    np.testing.assert_array_equal(got, expected)
    assert survivor.stats()["vectors"] > before  # the doomed server's share went here


@pytest.mark.servers(1)
def test_a_row_without_text_raises_a_named_error(fake_servers: list[FakeEmbeddingServer]) -> None:
    out = embed_dataset(_dataset(300, bad={123: None}), base_url=fake_servers[0].base_url)
    with pytest.raises(InvalidRowError) as info:
        out.materialize()
    assert isinstance(info.value, InvalidInputError)
    assert info.value.row["id"] == 123
    assert info.value.column == "text"
    assert "'id': 123" in str(info.value) and "on_bad_row='drop'" in str(info.value)


@pytest.mark.servers(1)
def test_a_text_that_is_not_a_string_names_the_row(fake_servers: list[FakeEmbeddingServer]) -> None:
    out = embed_dataset(_dataset(10), "id", base_url=fake_servers[0].base_url)
    with pytest.raises(InvalidRowError, match=r"type int in column 'id', not a string"):
        out.materialize()


@pytest.mark.servers(1)
def test_bad_rows_are_dropped_when_asked(fake_servers: list[FakeEmbeddingServer]) -> None:
    n = 500
    out = embed_dataset(
        _dataset(n, bad={5: None, 250: None}),
        base_url=fake_servers[0].base_url,
        batch_size=100,
        on_bad_row="drop",
        instructions=None,
    )
    table = _collect(out)
    assert table.column("id").to_pylist() == [i for i in range(n) if i not in (5, 250)]
    got = _vectors(table)
    np.testing.assert_array_equal(got[5], fake_vector("chunk 6 of the corpus", DIM))


def test_bad_settings_fail_before_anything_runs() -> None:
    with pytest.raises(ConfigValueError, match="role"):
        embed_dataset(_dataset(3), base_url="http://127.0.0.1:9/v1", role="queries")  # type: ignore[arg-type]
    with pytest.raises(ConfigValueError, match="concurrency"):
        embed_dataset(_dataset(3), base_url="http://127.0.0.1:9/v1", concurrency=0)
    with pytest.raises(ConfigValueError, match="batch_size"):
        embed_dataset(_dataset(3), base_url="http://127.0.0.1:9/v1", request_batch_size=0)
