"""Deterministic fake vectors and the client's cache flow, for the backend-level tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vllm_embed import ClientStats, EmbedResult
from vllm_embed._cache import CacheKeySpace, ClientCache, EmbeddingCache
from vllm_embed._space import ClientSpace

DIM = 32


def vector(text: str, dim: int = DIM, seed: str = "") -> npt.NDArray[np.float32]:
    """The same text always gets the same unit vector (another ``seed``: another model)."""
    digest = hashlib.sha256((seed + text).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeModel:
    """Counts what it embeds; ``seed`` and ``dim`` stand for the model's weights."""

    def __init__(self, dim: int = DIM, seed: str = "") -> None:
        self.dim, self.seed = dim, seed
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> EmbedResult:
        self.embedded.extend(texts)
        vecs = np.stack([vector(t, self.dim, self.seed) for t in texts])
        return EmbedResult(vecs, 0, [], len(texts), "m")


def through(
    cc: ClientCache, model: FakeModel, texts: Sequence[str], space: CacheKeySpace | None = None
) -> EmbedResult:
    """What the client does: probe once, look up, embed the misses, store them."""
    space = space or CacheKeySpace(ClientSpace("m"))
    if cc.needs_probe(space):
        cc.adopt_probe(space, model.embed(["probe"]).vectors[0])
    lookup = cc.lookup(space, texts)
    if lookup is None:
        return model.embed(texts)
    miss = model.embed(lookup.miss_texts) if lookup.miss_texts else None
    if miss is not None and not cc.store(lookup, miss):
        return model.embed(texts)
    return lookup.assemble(miss, "m")


def client_cache(cache: EmbeddingCache) -> tuple[ClientCache, ClientStats]:
    stats = ClientStats()
    return ClientCache(cache, stats, owned=False), stats
