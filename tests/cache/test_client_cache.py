"""EmbeddingClient / AsyncEmbeddingClient with ``cache=...`` against the fake server over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vllm_embed import AsyncEmbeddingClient, CacheWarning, EmbeddingCache, EmbeddingClient
from vllm_embed._cache import PROBE_TEXT
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

KEY = "sk-cache-test-key-123"
DIM = 16


@pytest.fixture(scope="module")
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(dim=DIM, api_key=KEY, model="fake-model") as s:
        yield s


def _vectors(server: FakeEmbeddingServer) -> int:
    return int(server.stats()["vectors"])


def make(server: FakeEmbeddingServer, cache: object, **kw: object) -> EmbeddingClient:
    kw.setdefault("instructions", None)
    return EmbeddingClient(server.base_url, api_key=KEY, cache=cache, **kw)  # type: ignore[arg-type]


def test_second_embed_makes_no_request_and_equal_vectors(
    server: FakeEmbeddingServer, tmp_path: Path
) -> None:
    texts = [f"doc {i}" for i in range(100)]
    with make(server, tmp_path / "c.sqlite") as client:
        first = client.embed_documents(texts)
        before = server.requests_served
        second = client.embed_documents(texts)
        assert server.requests_served == before
        np.testing.assert_array_equal(first, second)
        assert second.dtype == np.float32 and second.flags["C_CONTIGUOUS"]
        assert client.stats.cache_hits == 100 and client.stats.cache_misses == 100
        assert client.stats.cache_bytes_read == 100 * DIM * 4
    # a new client (new process, say) on the same file: one probe request, then all hits
    with make(server, f"sqlite:///{tmp_path}/c.sqlite") as client:
        before = server.requests_served
        third = client.embed_documents(texts)
        assert server.requests_served == before + 1  # the probe
        np.testing.assert_array_equal(first, third)


def test_without_cache_nothing_changes(server: FakeEmbeddingServer) -> None:
    with make(server, None) as client:
        assert client.cache is None
        v = client.embed(["a", "b"])
        np.testing.assert_array_equal(v[1], fake_vector("b", DIM))
        assert client.stats.cache_hits == client.stats.cache_misses == 0


def test_only_misses_sent_duplicates_once_in_input_order(
    server: FakeEmbeddingServer, tmp_path: Path
) -> None:
    with make(server, tmp_path / "c.sqlite") as client:
        client.embed(["a", "c"])
        n0 = _vectors(server)
        texts = ["a", "b", "c", "b", "d", "a", "d"]
        out = client.embed(texts)
        assert _vectors(server) - n0 == 2  # b and d, once each
        np.testing.assert_array_equal(out, np.stack([fake_vector(t, DIM) for t in texts]))


def test_query_and_document_differ_with_instructions(
    server: FakeEmbeddingServer, tmp_path: Path
) -> None:
    with make(server, tmp_path / "c.sqlite", instructions="e5") as client:
        doc = client.embed_documents(["paris"])[0]
        query = client.embed_query("paris")
        np.testing.assert_array_equal(doc, fake_vector("passage: paris", DIM))
        np.testing.assert_array_equal(query, fake_vector("query: paris", DIM))
        np.testing.assert_array_equal(client.embed_query("paris"), query)


def test_settings_that_change_vectors_miss(server: FakeEmbeddingServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with make(server, path) as client:
        client.embed(["x"])
    for kw in ({"dimensions": 8}, {"normalize": True}, {"embed_dtype": "float16"}):
        with make(server, path, **kw) as client:
            n0 = _vectors(server)
            v = client.embed(["x"])
            assert _vectors(server) - n0 == 2, kw  # probe + x: nothing stale
            if "dimensions" in kw:
                assert v.shape == (1, 8)


def test_changed_model_under_the_same_name(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with (
        FakeEmbeddingServer(dim=DIM, api_key=KEY, model="fake-model") as s1,
        make(s1, path) as client,
    ):
        client.embed(["stable text"])
    with (
        FakeEmbeddingServer(dim=DIM + 8, api_key=KEY, model="fake-model") as s2,
        make(s2, path) as client,
    ):
        v = client.embed(["stable text"])
        assert v.shape == (1, DIM + 8)
        assert s2.stats()["vectors"] == 2  # probe + the text


def test_async_twin(server: FakeEmbeddingServer, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncEmbeddingClient(
            server.base_url, api_key=KEY, cache=tmp_path / "a.sqlite", instructions=None
        ) as client:
            first = await client.embed(["p", "q", "p"])
            before = server.requests_served
            second = await client.embed(["q", "p"])
            assert server.requests_served == before
            np.testing.assert_array_equal(second, first[[1, 0]])
            assert client.stats.cache_hits == 2

    asyncio.run(main())


def test_redis_cache_and_redis_down(server: FakeEmbeddingServer, redis_url: str) -> None:
    with make(server, redis_url) as client:
        first = client.embed(["r1", "r2"])
        before = server.requests_served
        np.testing.assert_array_equal(client.embed(["r2", "r1"]), first[[1, 0]])
        assert server.requests_served == before
    with make(server, "redis://127.0.0.1:1/0") as client:  # nothing listens there
        with pytest.warns(CacheWarning) as caught:
            out = [client.embed(["r1", "r2"]) for _ in range(3)]
        assert len(caught) == 1
        for v in out:
            np.testing.assert_array_equal(v, first)
        assert client.stats.cache_errors == 1


def test_api_key_in_no_key_and_no_value(server: FakeEmbeddingServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with make(server, path) as client:
        client.embed_documents(["secret-free text"])
        assert KEY not in repr(client)
    for f in tmp_path.iterdir():
        assert KEY.encode() not in f.read_bytes()


def test_probe_text_is_not_cached_as_a_user_text(
    server: FakeEmbeddingServer, tmp_path: Path
) -> None:
    with make(server, tmp_path / "c.sqlite") as client:
        client.embed(["a"])
        n0 = _vectors(server)
        client.embed([PROBE_TEXT])
        assert _vectors(server) - n0 == 1
        cache = client.cache
        assert isinstance(cache, EmbeddingCache)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_truncation_is_reported_for_hits_too(
    server: FakeEmbeddingServer, tmp_path: Path, redis_url: str, backend: str
) -> None:
    location = str(tmp_path / "t.sqlite") if backend == "sqlite" else redis_url
    long_text = " ".join(f"w{i}" for i in range(2000))  # far over max_model_len 512
    with make(server, location) as client:
        first = client.embed_with_info(["short", long_text])
        assert first.truncated_indices == [1]
        before = server.requests_served
        again = client.embed_with_info([long_text, "short", "new"])
        assert server.requests_served == before + 1  # only "new"
        assert again.truncated_indices == [0] and again.truncated == 1
        np.testing.assert_array_equal(again.vectors[0], first.vectors[1])


def test_cache_setting_from_toml_and_env(
    server: FakeEmbeddingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vllm_embed import load_config

    toml = tmp_path / "app.toml"
    toml.write_text(
        f'[embedding]\nbase_url = "{server.base_url}"\napi_key = "{KEY}"\n'
        f'cache = "{tmp_path / "toml.sqlite"}"\n'
    )
    assert load_config(toml).client_kwargs()["cache"] == str(tmp_path / "toml.sqlite")
    with EmbeddingClient.from_config(toml) as client:
        assert client.cache is not None and client.cache.location == str(tmp_path / "toml.sqlite")
    monkeypatch.setenv("VLLM_EMBED_CACHE", f"sqlite:///{tmp_path}/env.sqlite")
    with EmbeddingClient(server.base_url, api_key=KEY) as client:
        assert client.cache is not None and client.cache.location == f"{tmp_path}/env.sqlite"
        client.embed(["e"])
        before = server.requests_served
        client.embed(["e"])
        assert server.requests_served == before
