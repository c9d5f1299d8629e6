"""A/B of candidate core-client changes, applied as monkeypatches in one process,
interleaved so machine load affects both alike. Prints median CPU us/vector and vectors/s."""

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent.parent / "shared"), str(_HERE)]
import httpx  # noqa: E402

import vllm_embed._client as cmod  # noqa: E402
from vllm_embed import EmbeddingClient  # noqa: E402
from vllm_embed_testing.fake_server import FakeEmbeddingServer  # noqa: E402

os.sched_setaffinity(0, [0])
batch = int(sys.argv[1])
dim = int(sys.argv[2])
reps = int(sys.argv[3])
variants = sys.argv[4].split(",")
texts = [f"benchmark text number {i % 256} about vector search" for i in range(20480)]

orig_with_retries = cmod.EmbeddingClient._with_retries
orig_extract = httpx.Cookies.extract_cookies


@contextlib.contextmanager
def patched(name):
    undo = []
    if "nocookies" in name:
        httpx.Cookies.extract_cookies = lambda self, response: None
        undo.append(lambda: setattr(httpx.Cookies, "extract_cookies", orig_extract))
    if "fastpath" in name:
        import fastpath_prototype as fastpath

        cmod.EmbeddingClient._run_batches = fastpath.fast_run_batches
        undo.append(lambda: setattr(cmod.EmbeddingClient, "_run_batches", fastpath.ORIG))
    if "httpxstream" in name:
        import fastpath_prototype as fastpath

        cmod.EmbeddingClient._run_batches = fastpath.stream_run_batches
        undo.append(lambda: setattr(cmod.EmbeddingClient, "_run_batches", fastpath.ORIG))
    if "noretry" in name:
        cmod.EmbeddingClient._with_retries = lambda self, fn: fn()
        undo.append(lambda: setattr(cmod.EmbeddingClient, "_with_retries", orig_with_retries))
    try:
        yield
    finally:
        for u in undo:
            u()


def make(name):
    kw = {}
    if "conc1" in name:
        kw["max_concurrency"] = 1
    if "conc2" in name:
        kw["max_concurrency"] = 2
    if "conc8" in name:
        kw["max_concurrency"] = 8
    if "notok" in name:
        kw["max_tokens_per_request"] = None
    return EmbeddingClient(s.base_url, batch_size=batch, **kw)


res = {v: ([], []) for v in variants}
with FakeEmbeddingServer(dim=dim, cpus=[1]) as s:
    clients = {v: make(v) for v in variants}
    for v in variants:
        with patched(v):
            clients[v].embed(texts[:1024])
    for _r in range(reps):
        for v in variants:
            with patched(v):
                t = time.perf_counter()
                cp = time.process_time()
                out = clients[v].embed(texts)
                el = time.perf_counter() - t
                cpu = time.process_time() - cp
            res[v][0].append(len(texts) / el)
            res[v][1].append(cpu / len(texts) * 1e6)
            del out
print(f"batch {batch} dim {dim} reps {reps} load {os.getloadavg()}")
for v in variants:
    rate, cpu = statistics.median(res[v][0]), statistics.median(res[v][1])
    print(f"  {v:28s} {rate:8.0f} vec/s  {cpu:6.1f} us/vec CPU  (min cpu {min(res[v][1]):.1f})")
