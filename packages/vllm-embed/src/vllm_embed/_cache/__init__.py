"""The per-text embedding cache behind ``EmbeddingClient(..., cache=...)``.

:class:`EmbeddingCache` opens a SQLite file (the default) or a Redis server;
:class:`ClientCache` is what one client does with it (probe, lookup, store). Keys cover
everything that changes a vector (:mod:`vllm_embed._cache._keys`).
"""

from vllm_embed._cache._cache import (
    DEFAULT_MAX_BYTES,
    CacheWarning,
    ClientCache,
    EmbeddingCache,
    Lookup,
)
from vllm_embed._cache._keys import PROBE_TEXT, CacheKeySpace, text_keys

__all__ = [
    "DEFAULT_MAX_BYTES",
    "PROBE_TEXT",
    "CacheKeySpace",
    "CacheWarning",
    "ClientCache",
    "EmbeddingCache",
    "Lookup",
    "text_keys",
]
