"""AsyncEmbeddingClient: the asyncio twin (one httpx.AsyncClient, bounded concurrent tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._base import BaseEmbeddingClient, EmbedPlan, Kind, Output, Renegotiate
from vllm_embed._endpoints import Endpoint
from vllm_embed._errors import (
    APIConnectionError,
    APIStatusError,
    ContextLengthError,
    ModelNotFoundError,
)
from vllm_embed._http_errors import error_from_response
from vllm_embed._lean_http import LeanHTTP, post_into
from vllm_embed._retry import (
    RetryableStatus,
    acall_with_retries,
)
from vllm_embed._transport import parse_error_body
from vllm_embed._types import EmbedResult, ModelInfo

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["AsyncEmbeddingClient"]

T = TypeVar("T")
U = TypeVar("U")
_MAX_RENEGOTIATIONS = 6


class AsyncEmbeddingClient(BaseEmbeddingClient):
    """Embeddings from a vLLM (or any OpenAI-compatible) server, with asyncio.

    >>> async with AsyncEmbeddingClient("http://localhost:8000/v1") as client:
    ...     vectors = await client.embed(["hello", "world"])

    Same settings and method names as :class:`~vllm_embed.EmbeddingClient`; methods that
    talk to the server are coroutines. Up to ``max_concurrency`` requests are in flight at
    once over one pooled ``httpx.AsyncClient``; results come back in input order.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._http_client = http_client
        self._owns_http = http_client is None
        self._closed = False
        self._lean: LeanHTTP | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._discovery_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        #: How retries wait (tests replace it to avoid real sleeping).
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str] | EmbedConfig | None = None, **overrides: Any
    ) -> AsyncEmbeddingClient:
        """A client from a config file, Python module, env, or an ``EmbedConfig``."""
        return cls(**cls._kwargs_from_config(source, overrides))

    # ------------------------------------------------------------ resources
    def _http(self) -> httpx.AsyncClient:
        """The pooled AsyncClient of the running event loop.

        Connections belong to the loop that opened them; frameworks that call the client
        from several loops (``asyncio.run`` per call) get a fresh pool per loop instead of
        "Event loop is closed" errors. A client passed as ``http_client=`` is always used.
        """
        if self._closed:
            raise RuntimeError("This AsyncEmbeddingClient is closed; create a new one.")
        loop = asyncio.get_running_loop()
        client = self._http_client
        if client is not None and (not self._owns_http or self._http_loop is loop):
            return client
        self._http_client = httpx.AsyncClient(
            timeout=self._httpx_timeout(), limits=self._httpx_limits()
        )
        self._http_loop = loop
        self._discovery_lock = None
        return self._http_client

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._discovery_lock is None or self._lock_loop is not loop:
            self._discovery_lock = asyncio.Lock()
            self._lock_loop = loop
        return self._discovery_lock

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        self._closed = True
        http, self._http_client = self._http_client, None
        if http is not None and self._owns_http:
            with contextlib.suppress(RuntimeError):  # its loop may be gone already
                await http.aclose()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self._lean is not None:
            self._lean.close()

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ retries
    async def _with_retries(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await acall_with_retries(
                fn, self._retry, sleep=self._sleep, on_retry=self._on_retry
            )
        except RetryableStatus as exc:
            raise exc.error from None
        except APIConnectionError as exc:
            final = self._final_connection_error(exc)
            if final is exc:
                raise
            raise final from exc

    async def _call(
        self, method: str, path: str, *, root: bool = False, content: bytes | None = None
    ) -> tuple[httpx.Response, Endpoint]:
        """See :meth:`EmbeddingClient._call`."""

        async def attempt() -> tuple[httpx.Response, Endpoint]:
            tried = 0
            while True:
                ep = self._pool.first()
                url = (ep.root_url if root else ep.base_url) + path
                try:
                    resp = await self._http().request(
                        method, url, content=content, headers=self._headers
                    )
                except httpx.TransportError as exc:
                    err = self._transport_error(ep, exc)
                    tried += 1
                    if tried < len(self._pool) and not self._pool.all_down():
                        continue
                    raise err from exc
                self._check_retryable(ep, resp.status_code, resp.content, resp.headers)
                return resp, ep

        return await self._with_retries(attempt)

    # ------------------------------------------------------------ discovery
    async def models(self) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``), with vLLM's max_model_len."""
        resp, ep = await self._call("GET", "/models")
        if resp.status_code != 200:
            body = parse_error_body(resp.content)
            raise error_from_response(
                resp.status_code,
                body,
                url=ep.display_url,
                request_id=resp.headers.get("x-request-id"),
            )
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        models = self._parse_models(doc, ep.display_url)
        self._models = models
        return models

    async def model_name(self) -> str:
        """The model in use: the one given, else the single model the server serves."""
        if self._model is not None:
            return self._model
        async with self._lock():
            if self._model is None:
                models = self._models if self._models is not None else await self.models()
                self._model = self._choose_model(models, self._pool.first().display_url)
        return self._model

    async def max_model_len(self) -> int | None:
        """The model's context length from ``/v1/models`` (vLLM), or None if not reported."""
        if self._max_model_len_known:
            return self._max_model_len
        model = await self.model_name()
        async with self._lock():
            if not self._max_model_len_known:
                models = self._models
                if models is None:
                    try:
                        models = await self.models()
                    except APIStatusError:
                        models = []
                self._max_model_len = self._max_len_from(models, model)
                self._max_model_len_known = True
        return self._max_model_len

    async def dimension(self) -> int:
        """The embedding dimension (probed once with one short input, then cached)."""
        if self._dimension is None:
            result = await self.embed_with_info([C.DIMENSION_PROBE_TEXT])
            self._dimension = int(result.vectors.shape[1])
        return self._dimension

    async def version(self) -> str | None:
        """The server's version (``GET /version``; vLLM), or None if it has no such route."""
        resp, _ = await self._call("GET", "/version", root=True)
        if resp.status_code != 200:
            return None
        try:
            doc = resp.json()
        except ValueError:
            return None
        version = doc.get("version") if isinstance(doc, dict) else None
        return str(version) if version is not None else None

    async def health(self) -> bool:
        """True when at least one endpoint answers ``GET /health`` with 200. Never raises."""
        ok = False
        for ep in self._pool.endpoints:
            try:
                resp = await self._http().get(ep.root_url + "/health", headers=self._headers)
            except httpx.TransportError:
                self._pool.mark_down(ep)
                continue
            if resp.status_code == 200:
                self._pool.mark_up(ep)
                ok = True
        return ok

    # ------------------------------------------------------------ embedding
    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as they are: a float32 array ``(len(texts), dim)`` in input order."""
        return (await self.embed_with_info(texts)).vectors

    async def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed documents (with the model's document instruction, if it has one)."""
        return (await self.embed_with_info(texts, kind="document")).vectors

    async def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query (with the model's query instruction): a ``(dim,)`` array."""
        query = self._validate_query(text)
        vectors = (await self.embed_with_info([query], kind="query")).vectors
        return vectors[0]  # type: ignore[no-any-return]

    async def embed_documents_list(self, texts: Sequence[str]) -> list[list[float]]:
        """:meth:`embed_documents` as Python lists."""
        result: list[list[float]] = (await self.embed_documents(texts)).tolist()
        return result

    async def embed_query_list(self, text: str) -> list[float]:
        """:meth:`embed_query` as a Python list."""
        result: list[float] = (await self.embed_query(text)).tolist()
        return result

    async def embed_with_info(self, texts: Sequence[str], *, kind: Kind = "raw") -> EmbedResult:
        """Embed and report what happened; see :meth:`EmbeddingClient.embed_with_info`."""
        items = self._validate(texts)
        try:
            model = await self.model_name()
            if not items:
                return self._empty(await self.dimension())
            inputs = self._apply_kind(items, kind, model)
            mml = await self.max_model_len()
            plan = self._plan(inputs, mml)
            truncated = await self._check_truncation(plan, model)
            out, prompt_tokens, url = await self._run_batches(plan, model)
        except ModelNotFoundError as err:
            raise self._model_not_found(err, await self._served_ids()) from None
        out = self._postprocess(out, url)
        exact = self._truncation_exact(plan)
        return self._result(out, truncated, prompt_tokens, model, exact=exact)

    async def _served_ids(self) -> list[str] | None:
        try:
            return [m.id for m in await self.models()]
        except Exception:  # best effort: the original error matters more
            return None

    async def _map(
        self, fn: Callable[[T], Awaitable[U]], items: Sequence[T], sink: Callable[[int, U], None]
    ) -> None:
        """Run ``fn`` over items with at most max_concurrency in flight; ``sink(i, result)``.

        Workers pull the next item as soon as one finishes; the first failure cancels the
        rest and is raised.
        """
        if len(items) <= 1 or self._max_concurrency == 1:
            for i, item in enumerate(items):
                sink(i, await fn(item))
            return
        queue = iter(range(len(items)))

        async def worker() -> None:
            for i in queue:
                sink(i, await fn(items[i]))

        tasks = [
            asyncio.create_task(worker()) for _ in range(min(self._max_concurrency, len(items)))
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_batches(
        self, plan: EmbedPlan, model: str
    ) -> tuple[npt.NDArray[np.float32], int, str]:
        inputs, tpt = plan.inputs, plan.truncate_prompt_tokens
        out = Output(len(inputs))

        async def one(span: tuple[int, int]) -> None:
            start, end = span
            try:
                await self._embed_batch(model, inputs[start:end], tpt, out, start)
            except ContextLengthError as err:
                if err.input_index is None and end - start == 1:
                    err.input_index = start
                raise

        await self._map(one, plan.batches, lambda i, _: None)
        return out.result(), out.prompt_tokens, out.url

    async def _embed_batch(
        self, model: str, inputs: list[str], tpt: int | None, out: Output, start: int
    ) -> None:
        """One batch into ``out[start:...]``, with failover, renegotiation and retries."""
        n = len(inputs)

        async def attempt() -> None:
            failovers = 0
            for _ in range(_MAX_RENEGOTIATIONS):
                ep = self._pool.acquire()
                try:
                    encoding, body = self._request_body(ep, model, inputs, tpt)
                    self.stats.add(requests=1)
                    try:
                        if encoding == "bytes" and self._lean_ok(ep):
                            resp = await self._lean_post(ep, body, out, start, n)
                            if resp is None:  # read straight into the output
                                return
                        else:
                            resp = await self._http().post(
                                ep.embeddings_url, content=body, headers=self._headers
                            )
                    except httpx.TransportError as exc:
                        err = self._transport_error(ep, exc)
                        failovers += 1
                        if failovers < len(self._pool) and not self._pool.all_down():
                            continue
                        raise err from exc
                finally:
                    self._pool.release(ep)
                try:
                    decoded = self._handle_embed_response(ep, encoding, resp, n, model)
                except Renegotiate:
                    continue
                out.put(start, start + n, decoded.vectors, ep.display_url)
                out.done(decoded.prompt_tokens, ep.display_url)
                return
            raise RuntimeError("encoding negotiation did not settle")  # pragma: no cover

        await self._with_retries(attempt)

    # ------------------------------------------------------------ lean HTTP path
    def _lean_ok(self, ep: Endpoint) -> bool:
        """The lean path (see :mod:`vllm_embed._lean_http`) runs in worker threads here."""
        if not self._owns_http:
            return False
        if self._lean is None:
            self._lean = LeanHTTP(self._timeout)
        return self._lean.allowed(ep.base_url)

    async def _lean_post(
        self, ep: Endpoint, body: bytes, out: Output, start: int, n: int
    ) -> httpx.Response | None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_concurrency, thread_name_prefix="vllm-embed-async"
            )
        assert self._lean is not None
        call = functools.partial(
            post_into,
            self._lean,
            ep.embeddings_url,
            ep.display_url,
            body,
            self._headers,
            out,
            start,
            n,
        )
        resp = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        if resp is None:
            self._pool.mark_up(ep)
            self.stats.encodings[ep.display_url] = "bytes"
        return resp

    # ------------------------------------------------------------ truncation
    async def _check_truncation(self, plan: EmbedPlan, model: str) -> list[int]:
        """Indices of inputs longer than the limit (see ``count_truncated``).

        vLLM's ``/tokenize`` takes one prompt per request, so the long inputs are counted
        with up to ``max_concurrency`` requests in flight.
        """
        counts: list[int | None] = [None] * len(plan.suspects)
        if self._wants_token_counts(plan):
            texts = [plan.inputs[i] for i in plan.suspects]

            async def count(text: str) -> int | None:
                return await self._count_tokens(model, text)

            def sink(i: int, value: int | None) -> None:
                counts[i] = value

            await self._map(count, texts, sink)
        return self._judge_truncation(plan, counts)

    async def _count_tokens(self, model: str, text: str) -> int | None:
        """Exact token count from vLLM's ``POST /tokenize``; None if the server has none."""
        if self._pool.first().tokenize_supported is False:
            return None
        body = self._tokenize_body(model, text)
        resp, ep = await self._call("POST", "/tokenize", root=True, content=body)
        return self._tokenize_count(ep, resp.status_code, resp.content)
