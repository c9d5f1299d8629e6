"""Per-request CPU of httpx vs http.client for vLLM `bytes` responses (see ../PROFILE.md)."""

import json
import os
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent.parent / "shared"), str(_HERE)]
import httpcore  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402

from vllm_embed_testing.fake_server import FakeEmbeddingServer  # noqa: E402

os.sched_setaffinity(0, [0])
texts = [f"benchmark text number {i % 256} about vector search" for i in range(256)]


def cpu_of(fn, n=100, rep=5):
    fn()
    best = 1e9
    for _ in range(rep):
        c0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - c0) / n)
    return best


with FakeEmbeddingServer(dim=1024, cpus=[1]) as s:
    url = s.base_url + "/embeddings"
    hx = httpx.Client()
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", s.port)
    for b in (64, 256):
        big = json.dumps(
            {"model": "fake-model", "input": texts[:b], "encoding_format": "bytes"}
        ).encode()
        out = np.empty((b * 4, 1024), np.float32)
        view = memoryview(out).cast("B")

        def httpx_plain(big=big):
            return np.frombuffer(hx.post(url, content=big).content, np.float32)

        def httpx_stream(big=big, view=view):
            with hx.stream("POST", url, content=big) as r:
                pos = 0
                for chunk in r.iter_raw():
                    view[pos : pos + len(chunk)] = chunk
                    pos += len(chunk)

        def raw_readinto(big=big, view=view):
            conn.request(
                "POST", "/v1/embeddings", body=big, headers={"content-type": "application/json"}
            )
            r = conn.getresponse()
            n = int(r.getheader("content-length"))
            r.getheader("metadata")
            got = r.readinto(view[:n])
            assert got == n

        res = {}
        res["httpx .content"] = cpu_of(httpx_plain)
        res["httpx stream->out"] = cpu_of(httpx_stream)
        old = httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES
        httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES = 1 << 20
        res["httpx .content READ=1MB"] = cpu_of(httpx_plain)
        res["httpx stream READ=1MB"] = cpu_of(httpx_stream)
        httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES = old
        res["http.client readinto out"] = cpu_of(raw_readinto)
        for k, v in res.items():
            print(f"batch {b}: {k:28s} {v * 1e6:7.0f} us CPU/request  {v / b * 1e6:6.2f} us/vec")
print("load", os.getloadavg())
