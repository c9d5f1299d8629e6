"""``vllm-embed cache stats|clear`` on a SQLite file and on the real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

from cache_support import FakeModel, client_cache, through
from click.testing import CliRunner

from vllm_embed import EmbeddingCache
from vllm_embed._cache import CacheKeySpace
from vllm_embed._space import ClientSpace
from vllm_embed.cli import main


def _fill(location: str) -> None:
    with EmbeddingCache(location) as cache:
        cc, _ = client_cache(cache)
        through(cc, FakeModel(), ["a", "b", "c"], CacheKeySpace(ClientSpace("org/m1")))
        through(cc, FakeModel(), ["a"], CacheKeySpace(ClientSpace("m2")))


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cache", *args])
    return result.exit_code, result.output


def test_stats_and_clear_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    _fill(path)
    code, out = _run("stats", path)
    assert code == 0 and "entries   4" in out and "org/m1: 3 entries" in out
    code, out = _run("stats", path, "--json")
    assert json.loads(out)["models"]["m2"]["entries"] == 1
    code, out = _run("clear", path, "--model", "org/m1")
    assert code == 0 and "Cleared 3 entries (model org/m1)" in out
    code, out = _run("clear", f"sqlite:///{path}")
    assert code == 0 and "Cleared 1 entries (all models)" in out


def test_stats_and_clear_redis(redis_url: str) -> None:
    _fill(redis_url)
    code, out = _run("stats", redis_url)
    assert code == 0 and "(redis)" in out and "m2: 1 entries" in out
    code, out = _run("clear", redis_url, "--model", "m2")
    assert code == 0 and "Cleared 1 entries" in out
    code, out = _run("stats", redis_url, "--json")
    assert json.loads(out)["entries"] == 3


def test_corrupt_file_stats_says_how_and_clear_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"garbage" * 5000)
    code, out = _run("stats", str(path))
    assert code == 1 and f"vllm-embed cache clear {path}" in out
    code, out = _run("clear", str(path))
    assert code == 0 and "Removed the damaged cache" in out and not path.exists()
    EmbeddingCache(path).close()  # a fresh cache opens there again


def test_redis_down_is_one_clear_line(tmp_path: Path) -> None:
    code, out = _run("stats", "redis://:pw-secret@127.0.0.1:1/0")
    assert code == 1 and "redis-server running" in out and "pw-secret" not in out
