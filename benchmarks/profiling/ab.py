"""A/B of core-client settings and transports in one process, interleaved so machine load
affects every variant alike. Prints median CPU us/vector and vectors/s.

    python benchmarks/profiling/ab.py BATCH DIM REPS VARIANTS

BATCH 0 means the client's default batch size. Variants (joined with "+"): ``base`` (the
core as installed, default settings), ``httpx`` (the httpx transport for every endpoint),
``concN`` (max_concurrency=N), ``notok`` (no token budget).
"""

import os
import re
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent.parent / "shared"), str(_HERE)]

from vllm_embed import EmbeddingClient  # noqa: E402
from vllm_embed_testing.fake_server import FakeEmbeddingServer  # noqa: E402

os.sched_setaffinity(0, [0])
batch = int(sys.argv[1])
dim = int(sys.argv[2])
reps = int(sys.argv[3])
variants = sys.argv[4].split(",")
texts = [f"benchmark text number {i % 256} about vector search" for i in range(20480)]


def make(name: str) -> EmbeddingClient:
    kw: dict[str, object] = {}
    if batch:
        kw["batch_size"] = batch
    conc = re.search(r"conc(\d+)", name)
    if conc:
        kw["max_concurrency"] = int(conc.group(1))
    if "notok" in name:
        kw["max_tokens_per_request"] = None
    if "httpx" in name:
        os.environ["VLLM_EMBED_LEAN_HTTP"] = "0"
    client = EmbeddingClient(s.base_url, **kw)
    client.embed(texts[:1024])  # the transport is chosen (and the env read) here
    os.environ.pop("VLLM_EMBED_LEAN_HTTP", None)
    return client


res: dict[str, tuple[list[float], list[float]]] = {v: ([], []) for v in variants}
with FakeEmbeddingServer(dim=dim, cpus=[1]) as s:
    clients = {v: make(v) for v in variants}
    for _r in range(reps):
        for v in variants:
            t = time.perf_counter()
            cp = time.process_time()
            out = clients[v].embed(texts)
            el = time.perf_counter() - t
            cpu = time.process_time() - cp
            res[v][0].append(len(texts) / el)
            res[v][1].append(cpu / len(texts) * 1e6)
            del out
    for c in clients.values():
        c.close()
print(f"batch {batch or 'default'} dim {dim} reps {reps} load {os.getloadavg()}")
for v in variants:
    rate, cpu = statistics.median(res[v][0]), statistics.median(res[v][1])
    print(f"  {v:28s} {rate:8.0f} vec/s  {cpu:6.1f} us/vec CPU  (min cpu {min(res[v][1]):.1f})")
