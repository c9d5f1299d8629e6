"""The fake embedding server answers like vLLM 0.32 over real HTTP, from its own process."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from vllm_embed_testing.fake_server import (
    FakeEmbeddingServer,
    FakeServerConfig,
    InProcessFakeVLLM,
    fake_token_count,
    fake_vector,
)

pytestmark = pytest.mark.enable_socket

DIM = 16
KEY = "sk-fake-secret-4321"
TEXTS = ["alpha", "beta gamma", "", "delta epsilon zeta"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(dim=DIM, api_key=KEY, max_model_len=8) as srv:
        yield srv


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
        yield client


def _embed(http: httpx.Client, server: FakeEmbeddingServer, **body: object) -> httpx.Response:
    return http.post(f"{server.base_url}/embeddings", json={"input": TEXTS, **body})


def _expected(dimensions: int | None = None) -> np.ndarray:
    return np.stack([fake_vector(t, DIM, dimensions) for t in TEXTS])


def test_fake_vectors_are_normalised_deterministic_and_distinct() -> None:
    vectors = np.stack([fake_vector(t, 64) for t in [f"text {i}" for i in range(200)]])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(vectors[3], fake_vector("text 3", 64))
    assert len({row.tobytes() for row in vectors}) == 200


def test_float_encoding_returns_each_texts_vector_in_input_order(server, http) -> None:
    response = _embed(http, server, encoding_format="float", model="fake-model")
    assert response.status_code == 200
    payload = response.json()
    assert [item["index"] for item in payload["data"]] == [0, 1, 2, 3]
    got = np.array([item["embedding"] for item in payload["data"]], dtype=np.float32)
    assert np.array_equal(got, _expected())
    assert payload["model"] == "fake-model"
    tokens = sum(fake_token_count(t) for t in TEXTS)
    assert payload["usage"]["prompt_tokens"] == payload["usage"]["total_tokens"] == tokens


def test_float_is_the_default_encoding(server, http) -> None:
    payload = _embed(http, server).json()
    assert isinstance(payload["data"][0]["embedding"], list)


@pytest.mark.parametrize(("dtype", "np_dtype"), [("float32", np.float32), ("float16", np.float16)])
def test_base64_encoding(server, http, dtype, np_dtype) -> None:
    payload = _embed(http, server, encoding_format="base64", embed_dtype=dtype).json()
    got = np.stack(
        [np.frombuffer(base64.b64decode(d["embedding"]), np_dtype) for d in payload["data"]]
    )
    assert np.array_equal(got, _expected().astype(np_dtype))


@pytest.mark.parametrize(("dtype", "np_dtype"), [("float32", "<f4"), ("float16", "<f2")])
def test_bytes_encoding_body_and_metadata_header(server, http, dtype, np_dtype) -> None:
    response = _embed(http, server, encoding_format="bytes", embed_dtype=dtype)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    metadata = json.loads(response.headers["metadata"])
    size = np.dtype(np_dtype).itemsize * DIM
    assert metadata["data"] == [
        {
            "index": i,
            "embed_dtype": dtype,
            "endianness": "native",
            "start": i * size,
            "end": (i + 1) * size,
            "shape": [DIM],
        }
        for i in range(len(TEXTS))
    ]
    assert metadata["usage"]["prompt_tokens"] == sum(fake_token_count(t) for t in TEXTS)
    assert metadata["model"] == "fake-model"
    got = np.frombuffer(response.content, np_dtype).reshape(len(TEXTS), DIM)
    assert np.array_equal(got, _expected().astype(np_dtype))


def test_bytes_big_endian(server, http) -> None:
    response = _embed(http, server, encoding_format="bytes", endianness="big")
    got = np.frombuffer(response.content, ">f4").reshape(len(TEXTS), DIM)
    assert np.array_equal(got, _expected())
    assert json.loads(response.headers["metadata"])["data"][0]["endianness"] == "big"


def test_bytes_only_has_no_metadata_header(http) -> None:
    with FakeEmbeddingServer(dim=DIM, encodings=("float", "bytes_only")) as srv:
        response = http.post(
            f"{srv.base_url}/embeddings", json={"input": ["x"], "encoding_format": "bytes_only"}
        )
    assert response.status_code == 200
    assert "metadata" not in response.headers
    assert np.array_equal(np.frombuffer(response.content, np.float32), fake_vector("x", DIM))


def test_repeated_request_gets_the_same_answer(server, http) -> None:
    first = _embed(http, server, encoding_format="bytes").content
    second = _embed(http, server, encoding_format="bytes").content
    assert first == second
    assert np.array_equal(np.frombuffer(first, np.float32).reshape(-1, DIM), _expected())


def test_dimensions_truncates_and_renormalises(server, http) -> None:
    payload = _embed(http, server, encoding_format="float", dimensions=4).json()
    got = np.array([d["embedding"] for d in payload["data"]], dtype=np.float32)
    assert got.shape == (len(TEXTS), 4)
    assert np.array_equal(got, _expected(4))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_dimensions_refused_by_a_non_matryoshka_server(http) -> None:
    with FakeEmbeddingServer(dim=DIM, matryoshka=False) as srv:
        response = http.post(f"{srv.base_url}/embeddings", json={"input": ["x"], "dimensions": 8})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "does not support Matryoshka" in error["message"]
    assert error["param"] == "dimensions"


def test_encoding_missing_from_an_old_server_is_a_400(http) -> None:
    with FakeEmbeddingServer(dim=DIM, encodings=("float", "base64")) as srv:
        bad = http.post(
            f"{srv.base_url}/embeddings", json={"input": ["x"], "encoding_format": "bytes"}
        )
        good = http.post(
            f"{srv.base_url}/embeddings", json={"input": ["x"], "encoding_format": "base64"}
        )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "encoding_format"
    assert good.status_code == 200


def test_wrong_or_missing_key_gets_vllms_401(server) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        response = httpx.post(
            f"{server.base_url}/embeddings", json={"input": ["x"]}, headers=headers
        )
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized"}
    assert httpx.get(f"{server.base_url}/models").status_code == 401


def test_root_routes_stay_open_with_a_key(server) -> None:
    assert httpx.get(f"{server.root_url}/health").status_code == 200
    assert httpx.get(f"{server.root_url}/version").json() == {"version": "0.32.0"}
    tokens = httpx.post(f"{server.root_url}/tokenize", json={"prompt": "a b c"}).json()
    assert tokens["count"] == len(tokens["tokens"]) == fake_token_count("a b c") == 5
    assert tokens["max_model_len"] == 8
    bare = httpx.post(
        f"{server.root_url}/tokenize", json={"prompt": "a b c", "add_special_tokens": False}
    ).json()
    assert bare["count"] == 3


def test_models_lists_the_model_with_max_model_len(server, http) -> None:
    payload = http.get(f"{server.base_url}/models").json()
    assert [(m["id"], m["max_model_len"]) for m in payload["data"]] == [("fake-model", 8)]


def test_version_can_be_absent() -> None:
    with FakeEmbeddingServer(dim=DIM, version=None) as srv:
        assert httpx.get(f"{srv.root_url}/version").status_code == 404


def test_vllm_error_answers(server, http) -> None:
    unknown = http.post(f"{server.base_url}/embeddings", json={"input": ["x"], "model": "nope"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "The model `nope` does not exist."
    empty = http.post(f"{server.base_url}/embeddings", json={"input": []})
    assert empty.status_code == 400
    assert "at least one prompt" in empty.json()["error"]["message"]
    assert http.get(f"{server.root_url}/nowhere").status_code == 404
    assert http.get(f"{server.base_url}/embeddings").status_code == 405


def test_input_over_max_model_len(server, http) -> None:
    long_text = " ".join(f"w{i}" for i in range(10))  # 12 tokens > 8
    response = http.post(f"{server.base_url}/embeddings", json={"input": ["ok", long_text]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "input_tokens"
    assert "maximum context length is 8 tokens" in error["message"]


def test_truncate_prompt_tokens_embeds_the_kept_words(server, http) -> None:
    long_text = " ".join(f"w{i}" for i in range(10))
    payload = http.post(
        f"{server.base_url}/embeddings",
        json={"input": [long_text], "truncate_prompt_tokens": 7},
    ).json()
    kept = " ".join(long_text.split()[:5])  # 7 tokens = 5 words + 2 special tokens
    got = np.array(payload["data"][0]["embedding"], dtype=np.float32)
    assert np.array_equal(got, fake_vector(kept, DIM))
    assert payload["usage"]["prompt_tokens"] == 7
    too_big = http.post(
        f"{server.base_url}/embeddings", json={"input": ["x"], "truncate_prompt_tokens": 9}
    )
    assert too_big.status_code == 400


def test_keep_alive_and_counters() -> None:
    with FakeEmbeddingServer(dim=DIM) as srv, httpx.Client() as client:
        for _ in range(5):
            client.post(f"{srv.base_url}/embeddings", json={"input": ["a", "b"]})
        client.get(f"{srv.base_url}/models")
        stats = srv.stats()
        assert srv.requests_served == 5
    # one connection for the client, one for this stats() call (each opens its own)
    assert stats["connections"] == 2
    assert stats["vectors"] == 10
    assert stats["paths"] == {"/v1/embeddings": 5, "/v1/models": 1}
    assert stats["last_request"]["json"] == {"input": ["a", "b"]}
    assert srv.process.poll() is not None  # stopped by the with block
    assert srv.requests_served == 5  # still readable after stop


def test_last_request_never_holds_the_key(server, http) -> None:
    _embed(http, server)
    assert KEY not in json.dumps(server.stats())
    assert KEY not in repr(server)


def test_fail_after_drops_connections() -> None:
    with FakeEmbeddingServer(dim=DIM, fail_after=1) as srv, httpx.Client() as client:
        assert client.post(f"{srv.base_url}/embeddings", json={"input": ["a"]}).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{srv.base_url}/embeddings", json={"input": ["a"]})
        assert srv.stats()["failures"] == 1


def test_fail_mode_status_then_recovery() -> None:
    with (
        FakeEmbeddingServer(dim=DIM, fail_after=0, fail_mode=503, fail_count=2) as srv,
        httpx.Client() as client,
    ):
        codes = [
            client.post(f"{srv.base_url}/embeddings", json={"input": ["a"]}).status_code
            for _ in range(3)
        ]
        assert codes == [503, 503, 200]
        assert srv.requests_served == 1


def test_fail_mode_hang_times_out() -> None:
    with (
        FakeEmbeddingServer(dim=DIM, fail_after=0, fail_mode="hang") as srv,
        httpx.Client(timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post(f"{srv.base_url}/embeddings", json={"input": ["a"]})


def test_rate_limited_server_still_answers_correctly() -> None:
    with FakeEmbeddingServer(dim=DIM, rate_limit=1000.0) as srv, httpx.Client() as client:
        response = client.post(
            f"{srv.base_url}/embeddings", json={"input": ["a", "b"], "encoding_format": "bytes"}
        )
    got = np.frombuffer(response.content, np.float32).reshape(2, DIM)
    assert np.array_equal(got, np.stack([fake_vector("a", DIM), fake_vector("b", DIM)]))


def test_bad_arguments_are_refused_in_the_parent() -> None:
    with pytest.raises(ValueError, match="unknown encodings"):
        FakeEmbeddingServer(encodings=("float", "msgpack"))
    with pytest.raises(ValueError, match="fail_mode"):
        FakeEmbeddingServer(fail_mode="explode")


def test_server_process_exits_when_its_parent_dies() -> None:
    script = (
        "import os, sys\n"
        "from vllm_embed_testing.fake_server import FakeEmbeddingServer\n"
        "server = FakeEmbeddingServer(dim=4)\n"
        "print(server.process.pid, flush=True)\n"
        "os._exit(0)  # no stop(): the child must notice on its own\n"
    )
    shared = str(Path(__file__).resolve().parents[2] / "shared")
    env = {**os.environ, "PYTHONPATH": shared}
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    child = int(parent.stdout.split()[0])
    for _ in range(200):  # up to 10 s
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


# -- the same fake in this process (what respx_vllm mounts) ----------------------------------


def _in_process(**config: object) -> InProcessFakeVLLM:
    return InProcessFakeVLLM(FakeServerConfig(dim=DIM, **config))  # type: ignore[arg-type]


def _json(fake: InProcessFakeVLLM, method: str, path: str, body: object = None) -> object:
    content = b"" if body is None else json.dumps(body).encode()
    status, _, answer = fake.answer(method, path, {}, content)
    assert status == 200, answer
    return json.loads(answer)


def test_in_process_answers_like_the_server_process() -> None:
    fake = _in_process()
    doc = _json(fake, "POST", "/v1/embeddings", {"input": TEXTS, "model": "fake-model"})
    got = np.array([item["embedding"] for item in doc["data"]], dtype=np.float32)  # type: ignore[index]
    assert np.array_equal(got, np.stack([fake_vector(t, DIM) for t in TEXTS]))
    assert fake.stats()["requests_served"] == 1


def test_in_process_options_for_scripted_tests() -> None:
    fake = _in_process(
        models=["bge", "e5"],
        list_max_model_len=False,
        tokenize=False,
        health=False,
        ignore_unknown_encoding=True,
        encodings=["float"],
    )
    listed = _json(fake, "GET", "/v1/models")["data"]  # type: ignore[index]
    assert [m["id"] for m in listed] == ["bge", "e5"]
    assert all("max_model_len" not in m for m in listed)
    assert fake.answer("POST", "/tokenize", {}, b'{"prompt": "a"}')[0] == 404
    assert fake.answer("GET", "/health", {}, b"")[0] == 404
    body = {"input": ["a"], "model": "e5", "encoding_format": "bytes"}
    doc = _json(fake, "POST", "/v1/embeddings", body)  # bytes ignored: floats come back
    assert isinstance(doc["data"][0]["embedding"], list)  # type: ignore[index]


def test_stall_delays_a_repeatable_share_of_answers() -> None:
    draws = random.Random(7)
    expected = [draws.random() < 0.5 for _ in range(8)]  # what stall_seed=7 stalls
    with (
        FakeEmbeddingServer(dim=DIM, stall=0.15, stall_rate=0.5, stall_seed=7) as srv,
        httpx.Client() as client,
    ):
        slow = []
        for _ in range(8):
            started = time.perf_counter()
            reply = client.post(f"{srv.base_url}/embeddings", json={"input": ["a"]})
            assert reply.status_code == 200
            slow.append(time.perf_counter() - started >= 0.15)
        assert slow == expected and 0 < sum(slow) < 8
        assert srv.stats()["stalls"] == sum(expected)
