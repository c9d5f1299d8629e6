"""The SQLite cache through the client's flow: hits, misses, keys, size limit, failures."""

from __future__ import annotations

import sqlite3
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cache_support import DIM, FakeModel, client_cache, through, vector

from vllm_embed import CacheCorruptError, CacheUnavailableError, CacheWarning, EmbeddingCache
from vllm_embed._cache import CacheKeySpace, text_keys
from vllm_embed._space import ClientSpace


@pytest.fixture
def cache(tmp_path: Path) -> EmbeddingCache:
    c = EmbeddingCache(tmp_path / "c.sqlite")
    yield c
    c.close()


def test_second_call_is_all_hits_with_equal_vectors(cache: EmbeddingCache) -> None:
    cc, stats = client_cache(cache)
    model = FakeModel()
    texts = [f"text {i}" for i in range(50)]
    first = through(cc, model, texts)
    model.embedded.clear()
    second = through(cc, model, texts)
    assert model.embedded == []
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert second.vectors.dtype == np.float32
    assert stats.cache_hits == 50 and stats.cache_misses == 50
    assert stats.cache_bytes_written == 50 * DIM * 4 == stats.cache_bytes_read


def test_half_hits_only_misses_embedded_in_input_order(cache: EmbeddingCache) -> None:
    cc, _ = client_cache(cache)
    model = FakeModel()
    through(cc, model, [f"t{i}" for i in range(0, 20, 2)])
    model.embedded.clear()
    texts = [f"t{i}" for i in range(20)]
    result = through(cc, model, texts)
    assert model.embedded == [f"t{i}" for i in range(1, 20, 2)]
    expected = np.stack([vector(t) for t in texts])
    np.testing.assert_array_equal(result.vectors, expected)


def test_duplicates_in_one_call_embedded_once(cache: EmbeddingCache) -> None:
    cc, stats = client_cache(cache)
    model = FakeModel()
    texts = ["a", "b", "a", "c", "b", "a"]
    result = through(cc, model, texts)
    assert sorted(model.embedded) == ["a", "b", "c", "probe"]
    np.testing.assert_array_equal(result.vectors, np.stack([vector(t) for t in texts]))
    assert stats.cache_misses == 3


def test_every_setting_is_its_own_space() -> None:
    space = ClientSpace(model="m", document_instruction="passage: ", limit=511)
    base = CacheKeySpace(space, role="document")
    client_changes: list[dict[str, object]] = [
        {"model": "m2"},
        {"document_instruction": "query: "},
        {"limit": 1023},
        {"dimensions": 64},
        {"client_side_dimensions": True},
        {"normalize": True},
        {"truncate": "error"},
    ]
    cache_changes: list[dict[str, object]] = [
        {"role": "query"},
        {"transfer_dtype": "float16"},
        {"storage_dtype": "float16"},
        {"namespace": "app2"},
        {"generation": 1},
    ]
    variants = [replace(base, space=replace(space, **c)) for c in client_changes]  # type: ignore[arg-type]
    variants += [replace(base, **c) for c in cache_changes]  # type: ignore[arg-type]
    keys = {text_keys(v.digest(), ["hello"])[0] for v in variants}
    keys.add(text_keys(base.digest(), ["hello"])[0])
    assert len(keys) == len(variants) + 1
    assert text_keys(base.digest(), ["hello"]) == text_keys(base.digest(), ["hello"])
    assert text_keys(base.digest(), ["hello"]) != text_keys(base.digest(), ["hello "])
    # the query instruction is no part of a document's key
    other_query = replace(base, space=replace(space, query_instruction="q: "))
    assert other_query.digest() == base.digest()


def test_query_and_document_of_same_text_are_different_entries(cache: EmbeddingCache) -> None:
    cc, _ = client_cache(cache)
    model = FakeModel()
    through(cc, model, ["x"], CacheKeySpace(ClientSpace("m"), role="document"))
    model.embedded.clear()
    space = ClientSpace("m", query_instruction="query: ")
    through(cc, model, ["x"], CacheKeySpace(space, role="query"))
    assert model.embedded == ["x"]


def test_changed_model_under_same_name_is_a_new_space(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    texts = ["one", "two"]
    with EmbeddingCache(path) as cache:
        cc, _ = client_cache(cache)
        through(cc, FakeModel(), texts)
    # same name, new weights: a new client notices from the probe and misses everything
    with EmbeddingCache(path) as cache:
        cc, _ = client_cache(cache)
        new = FakeModel(seed="v2")
        result = through(cc, new, texts)
        assert new.embedded == ["probe", *texts]
        np.testing.assert_array_equal(result.vectors[0], vector("one", seed="v2"))
    # same name, another dimension
    with EmbeddingCache(path) as cache:
        cc, _ = client_cache(cache)
        wide = FakeModel(dim=48)
        result = through(cc, wide, texts)
        assert wide.embedded == ["probe", *texts] and result.vectors.shape == (2, 48)
    # the old model again: its generation is not the latest, so it starts another one
    with EmbeddingCache(path) as cache:
        cc, _ = client_cache(cache)
        again = FakeModel()
        through(cc, again, texts)
        model_back = FakeModel()
        through(cc, model_back, texts)
        assert model_back.embedded == []


def test_float16_storage_halves_values(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "h.sqlite", dtype="float16") as cache:
        cc, stats = client_cache(cache)
        model = FakeModel()
        through(cc, model, ["a", "b"])
        result = through(cc, model, ["a", "b"])
        assert stats.cache_bytes_written == 2 * DIM * 2
        assert result.vectors.dtype == np.float32
        np.testing.assert_allclose(result.vectors[0], vector("a"), atol=1e-3)


def test_size_limit_evicts_least_recently_used(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "small.sqlite", max_bytes=600_000) as cache:
        cache.backend.touch_interval = 0.0
        cache.backend.limit_check_interval = 0.0
        cc, _ = client_cache(cache)
        model = FakeModel(dim=256)
        through(cc, model, ["keep"])
        for i in range(40):
            through(cc, model, [f"filler {i} {j}" for j in range(20)])
            through(cc, model, ["keep"])  # used again: recently used
        cache.flush()
        assert cache.backend.used_bytes() <= 600_000
        model.embedded.clear()
        through(cc, model, ["keep", "filler 0 0"])
        assert model.embedded == ["filler 0 0"]


def test_not_a_database_is_a_named_error_saying_how_to_clear(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(CacheCorruptError) as info:
        EmbeddingCache(path)
    assert "vllm-embed cache clear" in str(info.value) and str(path) in str(info.value)


def test_locked_file_falls_back_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path, busy_timeout=0.05) as cache:
        cc, stats = client_cache(cache)
        model = FakeModel()
        through(cc, model, ["warm"])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.warns(CacheWarning, match="without the cache") as caught:
                results = [through(cc, model, ["a", "b"])]
                cache.flush()  # the background write has failed now
                results += [through(cc, model, ["a", "b"]) for _ in range(2)]
            assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
            for r in results:
                np.testing.assert_array_equal(r.vectors[1], vector("b"))
            assert stats.cache_errors >= 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def test_strict_raises_instead(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path, busy_timeout=0.05, strict=True) as cache:
        cc, _ = client_cache(cache)
        model = FakeModel()
        through(cc, model, ["warm"])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(CacheUnavailableError, match="could not be used"):
                    through(cc, model, ["new text"])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def test_stats_and_clear_by_model(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        cc, _ = client_cache(cache)
        through(cc, FakeModel(), ["a", "b", "c"], CacheKeySpace(ClientSpace("m1")))
        through(cc, FakeModel(), ["a", "b"], CacheKeySpace(ClientSpace("m2")))
        info = cache.stats()
        assert info["entries"] == 5
        assert info["models"]["m1"]["entries"] == 3 and info["models"]["m2"]["entries"] == 2
        assert cache.clear(model="m1") == 3
        assert cache.stats()["models"] == {"m2": {"entries": 2, "bytes": 2 * DIM * 4}}
        assert cache.clear() == 2 and cache.stats()["entries"] == 0


def test_sqlite_url_and_directory(tmp_path: Path) -> None:
    with EmbeddingCache(f"sqlite:///{tmp_path}/u.sqlite") as c:
        assert c.location == f"{tmp_path}/u.sqlite" and c.kind == "sqlite"
    with EmbeddingCache(tmp_path) as c:
        assert c.location == str(tmp_path / "embeddings.sqlite")
    with pytest.raises(ValueError, match="not a cache this version knows"):
        EmbeddingCache("memcached://x")
