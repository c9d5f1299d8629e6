"""Cost of each piece of the core client, timed in isolation (see ../PROFILE.md)."""

import contextlib
import json
import os
import sys
import time
import timeit
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent.parent / "shared"), str(_HERE)]
import httpx  # noqa: E402
import numpy as np  # noqa: E402

from vllm_embed import EmbeddingClient  # noqa: E402
from vllm_embed._retry import retrying  # noqa: E402
from vllm_embed._wire import decode_response  # noqa: E402
from vllm_embed_testing.fake_server import FakeEmbeddingServer  # noqa: E402

os.sched_setaffinity(0, [0])


def best(fn, number, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


texts = [f"benchmark text number {i % 256} about vector search" for i in range(20480)]
with FakeEmbeddingServer(dim=1024, cpus=[1]) as s:
    c = EmbeddingClient(s.base_url, batch_size=64, max_concurrency=1)
    c.embed(texts[:128])
    # 1. planning
    t = best(lambda: c._plan(c._validate(texts), c.max_model_len()), 3)
    print(f"validate+plan 20480 texts: {t * 1e3:.1f} ms = {t / 20480 * 1e6:.2f} us/vec")
    # 2. per-request fixed overhead: one tiny request through the core (sync, 1 text)
    c1 = EmbeddingClient(s.base_url, batch_size=64, max_concurrency=1)
    c1.embed(["x"])
    t_core = best(lambda: c1.embed(["x"]), 200)
    hx = httpx.Client()
    body = json.dumps({"model": "fake-model", "input": ["x"], "encoding_format": "bytes"}).encode()
    url = s.base_url + "/embeddings"
    hx.post(url, content=body)
    t_hx = best(lambda: hx.post(url, content=body).content, 200)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", s.port)

    def raw():
        conn.request(
            "POST", "/v1/embeddings", body=body, headers={"content-type": "application/json"}
        )
        return conn.getresponse().read()

    raw()
    t_raw = best(raw, 200)
    print(
        f"one 1-text request (wall, round trip included): core embed {t_core * 1e6:.0f} us, "
        f"httpx.post {t_hx * 1e6:.0f} us, http.client {t_raw * 1e6:.0f} us"
    )

    # CPU version
    def cpu_of(fn, n=300):
        fn()
        c0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - c0) / n

    cpu_core = cpu_of(lambda: c1.embed(["x"]))
    cpu_hx = cpu_of(lambda: hx.post(url, content=body).content)
    cpu_raw = cpu_of(raw)
    print(
        f"  CPU: core {cpu_core * 1e6:.0f} us, httpx {cpu_hx * 1e6:.0f} us, "
        f"http.client {cpu_raw * 1e6:.0f} us"
    )
    # 3. decoding one 64 x 1024 bytes response
    big = json.dumps(
        {"model": "fake-model", "input": texts[:64], "encoding_format": "bytes"}
    ).encode()
    r = hx.post(url, content=big)
    content, meta, ctype = r.content, r.headers["metadata"], r.headers["content-type"]
    t = best(
        lambda: decode_response(
            content=content, content_type=ctype, metadata_header=meta, n_inputs=64, url=url
        ),
        200,
    )
    print(f"decode_response 64x1024 bytes: {t * 1e6:.0f} us = {t / 64 * 1e6:.2f} us/vec")
    t = best(lambda: json.loads(meta), 200)
    print(f"  of which json.loads(metadata): {t * 1e6:.0f} us")
    # reading the 256 KB body via httpx
    t_big = cpu_of(lambda: hx.post(url, content=big).content, 200)
    print(
        f"httpx.post 64x1024 bytes response CPU: {t_big * 1e6:.0f} us"
        f" = {t_big / 64 * 1e6:.2f} us/vec"
    )

    def raw_big():
        conn.request(
            "POST", "/v1/embeddings", body=big, headers={"content-type": "application/json"}
        )
        return conn.getresponse().read()

    t_rawbig = cpu_of(raw_big, 200)
    print(
        f"http.client 64x1024 bytes response CPU: {t_rawbig * 1e6:.0f} us"
        f" = {t_rawbig / 64 * 1e6:.2f} us/vec"
    )
    # 4. the retry loop around one successful attempt
    rt = c._retry

    def one_attempt():
        return 1
        yield  # a generator of no steps

    def run_retrying():
        with contextlib.suppress(StopIteration):
            next(retrying(one_attempt, rt))

    t = best(run_retrying, 2000)
    print(f"retrying() around one attempt: {t * 1e6:.1f} us per request")
    # 5. place copy
    out = np.empty((20480, 1024), np.float32)
    v = np.frombuffer(content, np.float32).reshape(64, 1024)
    t = best(lambda: out.__setitem__(slice(0, 64), v), 2000)
    print(f"copy 64 rows into output: {t * 1e6:.1f} us = {t / 64 * 1e6:.2f} us/vec (warm pages)")
    t = best(lambda: np.empty((20480, 1024), np.float32).fill(0), 3)
    print(
        f"first touch of a fresh 20480x1024 output: {t * 1e3:.1f} ms = {t / 20480 * 1e6:.2f} us/vec"
    )
print("load", os.getloadavg())
