"""Run as a process: fill a cache with deterministic vectors, batch after batch.

    python cache_writer.py PATH PREFIX BATCHES   (BATCHES=0: until killed)
Prints "ready" after the first batch is stored.
"""

from __future__ import annotations

import sys
from itertools import count

from cache_support import FakeModel, client_cache, through

from vllm_embed import EmbeddingCache


def main() -> None:
    path, prefix, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with EmbeddingCache(path, busy_timeout=30.0, strict=True) as cache:
        cc, _ = client_cache(cache)
        model = FakeModel(dim=256)
        for b in count():
            if batches and b >= batches:
                break
            through(cc, model, [f"{prefix} {b} {i}" for i in range(64)])
            if b == 0:
                print("ready", flush=True)


if __name__ == "__main__":
    main()
