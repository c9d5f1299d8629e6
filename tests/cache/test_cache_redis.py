"""The Redis cache against a real redis-server the tests start on a free local port."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import redis
from cache_support import DIM, FakeModel, client_cache, through, vector

from vllm_embed import CacheUnavailableError, CacheWarning, EmbeddingCache
from vllm_embed._cache import CacheKeySpace
from vllm_embed._space import ClientSpace
from vllm_embed_testing.redis_server import RedisServer


def test_hits_come_from_redis_with_equal_vectors(redis_url: str) -> None:
    with EmbeddingCache(redis_url) as cache:
        cc, stats = client_cache(cache)
        model = FakeModel()
        texts = [f"doc {i}" for i in range(300)] + ["doc 1"]
        first = through(cc, model, texts)
        model.embedded.clear()
        second = through(cc, model, texts)
        assert model.embedded == []
        np.testing.assert_array_equal(first.vectors, second.vectors)
        assert stats.cache_hits == 301 and stats.cache_misses == 300
    raw = redis.Redis.from_url(redis_url)
    values = [raw.get(k) for k in raw.scan_iter(match=b"vllm-embed:1::v:*")]
    assert len(values) == 300 and {len(v) for v in values} == {DIM * 4}
    # raw float32 bytes, not JSON
    assert any(np.array_equal(np.frombuffer(v, "<f4"), vector("doc 0")) for v in values)


def test_ttl_is_set_and_namespaces_are_apart(redis_url: str) -> None:
    with EmbeddingCache(redis_url, ttl=120, namespace="app1") as cache:
        cc, _ = client_cache(cache)
        through(cc, FakeModel(), ["a"])
    raw = redis.Redis.from_url(redis_url)
    keys = list(raw.scan_iter(match=b"vllm-embed:1:app1:v:*"))
    assert len(keys) == 1 and 0 < raw.ttl(keys[0]) <= 120
    with EmbeddingCache(redis_url, namespace="app2") as other:
        cc, _ = client_cache(other)
        model = FakeModel()
        through(cc, model, ["a"])
        assert model.embedded == ["probe", "a"]


def test_stats_and_clear_by_model(redis_url: str) -> None:
    with EmbeddingCache(redis_url) as cache:
        cc, _ = client_cache(cache)
        through(cc, FakeModel(), ["a", "b", "c"], CacheKeySpace(ClientSpace("m1")))
        through(cc, FakeModel(), ["a", "b"], CacheKeySpace(ClientSpace("m2")))
        info = cache.stats()
        assert info["entries"] == 5 and info["models"]["m1"]["entries"] == 3
        assert cache.clear(model="m1") == 3
        assert set(cache.stats()["models"]) == {"m2"}
        assert cache.clear() == 2
        assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_password_never_shown(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://user:s3cret-pw@")
    cache = EmbeddingCache(url)
    assert "s3cret-pw" not in repr(cache) and "s3cret-pw" not in cache.location


def test_redis_stopped_mid_run_falls_back_with_one_warning() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            with EmbeddingCache(server.url) as cache:
                cc, stats = client_cache(cache)
                model = FakeModel()
                through(cc, model, ["a", "b"])
                server.stop()
                with pytest.warns(CacheWarning, match="Redis") as caught:
                    results = [through(cc, model, ["a", "b", "c"]) for _ in range(3)]
                assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1
                for r in results:
                    np.testing.assert_array_equal(r.vectors, np.stack([vector(t) for t in "abc"]))
                assert stats.cache_errors == 1  # then left alone for retry_after seconds
                # back up: the cache is used again after the pause
                server.start()
                cc._down_until = 0.0
                model.embedded.clear()
                through(cc, model, ["a", "b", "c"])
                assert model.embedded == ["a", "b", "c"]  # the new server is empty
                model.embedded.clear()
                through(cc, model, ["a", "b", "c"])
                assert model.embedded == []
        finally:
            server.stop()


def test_strict_raises_when_redis_is_down() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))  # never started: nothing listens on the port
        with EmbeddingCache(server.url, strict=True) as cache:
            cc, _ = client_cache(cache)
            with pytest.raises(CacheUnavailableError, match="redis-server running"):
                through(cc, FakeModel(), ["a"])
