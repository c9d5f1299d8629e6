"""Cache tests: SQLite from the standard library and a real redis-server on a free port."""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401
from vllm_embed_testing.redis_server import redis_server, redis_url  # noqa: F401
