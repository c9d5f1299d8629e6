"""A respx-mocked vLLM server for the doctor CLI tests (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import respx

ROOT = "http://vllm.test:8000"
BASE_URL = ROOT + "/v1"


@dataclass
class MockVLLM:
    """What the mocked server serves; ``install`` adds its routes to a respx router."""

    dim: int = 384
    models: Sequence[str] = ("minilm",)
    api_key: str | None = None
    health: bool = True
    max_model_len: int | None = 256
    matryoshka: bool = False
    seen_auth: list[str | None] = field(default_factory=list)

    def _authorized(self, request: httpx.Request) -> bool:
        sent = request.headers.get("authorization")
        self.seen_auth.append(sent)
        return self.api_key is None or sent == f"Bearer {self.api_key}"

    def _models(self, request: httpx.Request) -> httpx.Response:
        if not self._authorized(request):
            return httpx.Response(401, json={"error": "Unauthorized"})
        data = [
            {"id": m, "object": "model", "max_model_len": self.max_model_len} for m in self.models
        ]
        return httpx.Response(200, json={"object": "list", "data": data})

    def _embeddings(self, request: httpx.Request) -> httpx.Response:
        if not self._authorized(request):
            return httpx.Response(401, json={"error": "Unauthorized"})
        body = json.loads(request.content)
        if body["model"] not in self.models:
            message = f"The model `{body['model']}` does not exist."
            return httpx.Response(
                404, json={"error": {"message": message, "type": "NotFoundError", "code": 404}}
            )
        dim = body.get("dimensions") or self.dim
        if "dimensions" in body and not self.matryoshka:
            message = (
                f"Model '{body['model']}' does not support Matryoshka embeddings; dimensions "
                f"must be unset (received dimensions={body['dimensions']})"
            )
            return httpx.Response(
                400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}}
            )
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [1.0] + [0.0] * (dim - 1)}
            for i in range(len(texts))
        ]
        usage = {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}
        return httpx.Response(200, json={"data": data, "model": body["model"], "usage": usage})

    def install(self, router: respx.MockRouter) -> MockVLLM:
        router.get(ROOT + "/health").respond(200 if self.health else 404)
        router.get(ROOT + "/version").respond(json={"version": "0.32.0"})
        router.get(BASE_URL + "/models").mock(side_effect=self._models)
        router.post(BASE_URL + "/embeddings").mock(side_effect=self._embeddings)
        return self
