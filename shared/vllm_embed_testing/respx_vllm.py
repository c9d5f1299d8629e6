"""Serve the project's fake vLLM through respx: real HTTP semantics, no sockets.

``mount(router, base_url, **config)`` routes every request for ``base_url``'s host to the
request handler of :mod:`vllm_embed_testing.fake_server` (the same code the out-of-process
fake server runs), so adapter unit tests get vLLM's real answers (``bytes`` encoding with
its ``metadata`` header, base64, float, /v1/models with ``max_model_len``, 401 without the
key) while pytest-socket keeps the network closed. The returned route records the calls.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

from vllm_embed_testing.fake_server import FakeServerConfig, _App, _Request

__all__ = ["API_KEY", "BASE_URL", "DIM", "MODEL", "embedding_inputs", "mount"]

# What the adapters' unit tests use unless a test says otherwise.
BASE_URL = "http://vllm.test/v1"
MODEL = "fake-model"
DIM = 16
API_KEY = "sk-unit-test-key-1234"


def mount(router: respx.MockRouter, base_url: str = BASE_URL, **config: Any) -> respx.Route:
    """Answer every request to ``base_url``'s host like a vLLM server configured by ``config``
    (the fields of :class:`FakeServerConfig`; defaults: DIM, MODEL, API_KEY above)."""
    config = {"dim": DIM, "model": MODEL, "api_key": API_KEY, **config}
    app = _App(FakeServerConfig(**config))
    url = httpx.URL(base_url)

    def answer(request: httpx.Request) -> httpx.Response:
        req = _Request(
            method=request.method,
            path=request.url.raw_path.decode("ascii"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.content,
            keep_alive=True,
        )
        status, headers, body = app.handle(req)
        return httpx.Response(status, headers=headers, content=b"".join(body))

    return router.route(scheme=url.scheme, host=url.host).mock(side_effect=answer)


def embedding_inputs(route: respx.Route) -> list[list[str]]:
    """The ``input`` list of every ``POST /v1/embeddings`` the route answered, in order."""
    return [
        json.loads(call.request.content)["input"]
        for call in route.calls
        if call.request.url.path.endswith("/embeddings")
    ]
