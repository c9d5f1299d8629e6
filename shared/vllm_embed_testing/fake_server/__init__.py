"""A fast fake vLLM / OpenAI-compatible embedding server, run in its own process.

Tests and benchmarks talk to it over real HTTP on 127.0.0.1::

    from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

    with FakeEmbeddingServer(dim=8, api_key="k") as server:
        client = EmbeddingClient(server.base_url, api_key="k")
        vectors = client.embed(["a", "b"])
        assert (vectors[1] == fake_vector("b", 8)).all()
        assert server.requests_served == 1

What it answers (shapes follow vLLM 0.32, see shared/notes/vllm-cpu-server.md):

- ``POST /v1/embeddings``: ``encoding_format`` ``float``, ``base64``, ``bytes`` (raw vectors in
  the body, JSON ``metadata`` response header) and ``bytes_only``; ``embed_dtype`` ``float32``
  or ``float16``; ``endianness``; ``dimensions`` (truncate and renormalise, or 400 when the
  server is not Matryoshka); ``truncate_prompt_tokens``; an encoding missing from
  ``encodings`` gets the 400 an old vLLM gives.
- ``GET /v1/models`` (items carry ``max_model_len``), ``GET /health``, ``GET /version``,
  ``POST /tokenize``.
- With ``api_key``: a wrong or missing key on ``/v1/*`` gets 401 ``{"error": "Unauthorized"}``.
- ``GET /_fake/stats``: counters for tests (never counted, never failed, never protected).

The fake tokenizer is one token per whitespace-separated word plus two special tokens, so
``"a b c"`` is 5 tokens. The vector of a text is deterministic (seeded by a hash of the text),
L2-normalised and different for every text: :func:`fake_vector` computes the same float32
values in the test's own process.

Speed: a raw ``asyncio.Protocol`` (no framework), keep-alive HTTP/1.1, and every text's
encoded vector (raw bytes, base64, JSON floats) cached, so a response is one ``bytes.join``.
One server process answers well over 100,000 vectors/s of dimension 1024; the client under
test is the bottleneck.

Modules: ``_vectors`` (deterministic outputs), ``_config`` (:class:`FakeServerConfig`,
request / answer / error types), ``_app`` (state, routing, ``/v1/embeddings``), ``_routes``
(the other routes), ``_http`` (connection protocol, child main, :class:`InProcessFakeVLLM`),
``__main__`` (the child process's entry); this module: :class:`FakeEmbeddingServer`.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

# Every name the single-module fake_server had stays importable from here; the ones not in
# __all__ are re-exported explicitly (``name as name``).
from ._app import _ANSWER_CACHE_BYTES as _ANSWER_CACHE_BYTES
from ._app import _CACHE_LIMIT as _CACHE_LIMIT
from ._app import _App as _App
from ._config import _REASONS as _REASONS
from ._config import ALL_ENCODINGS as ALL_ENCODINGS
from ._config import FakeServerConfig
from ._config import _Answer as _Answer
from ._config import _HTTPError as _HTTPError
from ._config import _openai_error as _openai_error
from ._config import _Request as _Request
from ._http import InProcessFakeVLLM
from ._http import _child_main as _child_main
from ._http import _Connection as _Connection
from ._http import _response_bytes as _response_bytes
from ._http import _serve as _serve
from ._vectors import _Entry as _Entry
from ._vectors import _fake_token_ids as _fake_token_ids
from ._vectors import _seed as _seed
from ._vectors import fake_chat_text as fake_chat_text
from ._vectors import fake_token_count, fake_vector
from ._vectors import fake_token_vectors as fake_token_vectors

__all__ = [
    "FakeEmbeddingServer",
    "FakeServerConfig",
    "InProcessFakeVLLM",
    "fake_token_count",
    "fake_vector",
]

_START_TIMEOUT = 30.0
#: The child process runs this file by path (see its docstring).
_CHILD_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")


class FakeEmbeddingServer:
    """Start a fake embedding server in a child process (started by the constructor).

    Args:
        dim: Vector dimension.
        model: The one served model name (``/v1/models``); another ``model`` gets 404.
        encodings: ``encoding_format`` values accepted; others get 400 like an old vLLM.
            ``("float",)`` imitates TEI/Ollama, ``("float", "base64")`` vLLM before 0.11.
        api_key: If set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (else 401).
        rate_limit: Capacity in vectors per second: responses are delayed so that the server
            never delivers more (a request of n texts occupies it n/rate seconds, in arrival
            order, like a busy GPU). ``None``: as fast as possible.
        max_model_len: Reported by ``/v1/models`` and ``/tokenize``; longer inputs get 400
            unless ``truncate_prompt_tokens`` is sent.
        fail_after: After this many ``/v1/embeddings`` requests, every request (any route
            except ``/_fake/stats``) fails per ``fail_mode``, ``fail_count`` times
            (``None``: forever). ``fail_after=0, fail_mode=503, fail_count=2`` fails the first
            two requests with 503, then answers normally.
        fail_mode: ``"drop"`` (close the connection without answering), ``"hang"`` (never
            answer on that connection) or an HTTP status code.
        delay: Seconds added to every successful ``/v1/embeddings`` response.
        stall: Seconds added to a successful ``/v1/embeddings`` response now and then: to
            each with probability ``stall_rate`` (drawn from ``random.Random(stall_seed)``,
            so a run is repeatable). A replica that stalls; ``stats()["stalls"]`` counts them.
        matryoshka: Accept ``dimensions`` (truncate + renormalise); else 400 like vLLM.
        version: Answer of ``/version``; ``None`` makes ``/version`` a 404.
        cpus: Pin the server process to these CPU cores (``os.sched_setaffinity``).
        rerank: The rerank routes served (see :class:`FakeServerConfig`).
        pooling_task: ``"token_embed"``: a multi-vector server (``/pooling``).
    """

    def __init__(
        self,
        dim: int = 384,
        model: str = "fake-model",
        encodings: Sequence[str] = ("float", "base64", "bytes", "bytes_only"),
        api_key: str | None = None,
        rate_limit: float | None = None,
        max_model_len: int = 512,
        fail_after: int | None = None,
        *,
        fail_mode: str | int = "drop",
        fail_count: int | None = None,
        delay: float = 0.0,
        stall: float = 0.0,
        stall_rate: float = 0.0,
        stall_seed: int = 0,
        matryoshka: bool = True,
        version: str | None = "0.32.0",
        cpus: Sequence[int] | None = None,
        rerank: str = "vllm",
        pooling_task: str = "embed",
        chat_template: bool = False,
        multimodal: bool = False,
    ) -> None:
        unknown = set(encodings) - set(ALL_ENCODINGS)
        if unknown:
            raise ValueError(f"unknown encodings {sorted(unknown)}; choose from {ALL_ENCODINGS}")
        if fail_mode not in ("drop", "hang") and not isinstance(fail_mode, int):
            raise ValueError("fail_mode must be 'drop', 'hang' or an HTTP status code")
        self.config = FakeServerConfig(
            dim=dim,
            model=model,
            encodings=list(encodings),
            api_key=api_key,
            rate_limit=rate_limit,
            max_model_len=max_model_len,
            fail_after=fail_after,
            fail_mode=fail_mode,
            fail_count=fail_count,
            delay=delay,
            stall=stall,
            stall_rate=stall_rate,
            stall_seed=stall_seed,
            matryoshka=matryoshka,
            version=version,
            cpus=list(cpus) if cpus is not None else None,
            rerank=rerank,
            pooling_task=pooling_task,
            chat_template=chat_template,
            multimodal=multimodal,
        )
        self._final_stats: dict[str, Any] | None = None
        self.process = subprocess.Popen(
            [sys.executable, _CHILD_MAIN, json.dumps(asdict(self.config))],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,  # the child exits when this pipe closes (parent gone)
        )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"

    def __repr__(self) -> str:
        state = "stopped" if self.process.poll() is not None else self.root_url
        return f"FakeEmbeddingServer(dim={self.config.dim}, model={self.config.model!r}, {state})"

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=_START_TIMEOUT):
                raise RuntimeError(f"fake server did not start within {_START_TIMEOUT} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fake server exited at start (code {self.process.wait()})")
        return int(json.loads(line)["port"])

    def stats(self) -> dict[str, Any]:
        """Counters: requests_served, vectors, failures, connections (opened so far),
        max_in_flight (delayed responses pending at once), stalls, paths (hits per path),
        last_request (``{"path", "headers": [names], "json": body}`` of /v1/embeddings)."""
        if self._final_stats is not None:
            return self._final_stats
        url = f"{self.root_url}/_fake/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    @property
    def requests_served(self) -> int:
        """``/v1/embeddings`` requests answered so far (error answers included, injected
        failures not)."""
        return int(self.stats()["requests_served"])

    def stop(self) -> None:
        """Stop the child process (idempotent); counters stay readable afterwards."""
        if self.process.poll() is None:
            if self._final_stats is None:
                with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                    self._final_stats = self.stats()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdout, self.process.stdin):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> FakeEmbeddingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
