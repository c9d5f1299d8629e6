"""Client CPU per cache hit: a fully cached batch through the SQLite cache, repeated.

    python benchmarks/profiling/cache_ab.py [N] [ROUNDS]

Embeds N texts (default 4,096) once against the fake server (dimension 1024), then asks for
them ROUNDS times (default 21) and prints the median and minimum client CPU per vector
(``time.process_time``: this process only). To compare two versions of the core, run it
alternately with ``PYTHONPATH=<other tree>/packages/vllm-embed/src`` and without, as
``ab.py`` does for the uncached path: the machine's load then affects both alike.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

import vllm_embed
from vllm_embed import EmbeddingClient
from vllm_embed_testing.fake_server import FakeEmbeddingServer

n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 21
texts = [f"cached text number {i} about vector search" for i in range(n)]
cpu = []
with FakeEmbeddingServer(dim=1024, model="m") as server, tempfile.TemporaryDirectory() as d:
    client = EmbeddingClient(server.base_url, cache=os.path.join(d, "cache.sqlite"))
    with client:
        client.embed(texts)
        for _ in range(rounds):
            began = time.process_time()
            client.embed(texts)
            cpu.append(time.process_time() - began)
print(
    f"{Path(vllm_embed.__file__).parent}: cache hits "
    f"{statistics.median(cpu) / n * 1e6:.2f} us/vector CPU (min {min(cpu) / n * 1e6:.2f})"
)
