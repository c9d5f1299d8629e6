"""EmbeddingClient: the synchronous twin (httpx.Client + a thread pool for pipelining)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from vllm_embed._retry import RetryableStatus, call_with_retries
from vllm_embed._transport import parse_error_body
from vllm_embed._types import EmbedResult, ModelInfo

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["EmbeddingClient"]

T = TypeVar("T")
_MAX_RENEGOTIATIONS = 6


class EmbeddingClient(BaseEmbeddingClient):
    """Embeddings from a vLLM (or any OpenAI-compatible) server, synchronously.

    >>> with EmbeddingClient("http://localhost:8000/v1", api_key="...") as client:
    ...     vectors = client.embed(["hello", "world"])   # numpy float32 (2, dim)

    One pooled ``httpx.Client`` per client; up to ``max_concurrency`` requests are in
    flight at once (a small thread pool), results come back in input order. Safe to share
    between threads. Nothing touches the network until the first call that needs it.
    See :class:`~vllm_embed._base.BaseEmbeddingClient` for all settings.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        http_client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._http_client = http_client
        self._owns_http = http_client is None
        self._executor: ThreadPoolExecutor | None = None
        self._lean: LeanHTTP | None = None
        self._lock = threading.Lock()
        self._discovery_lock = threading.Lock()
        self._closed = False
        #: How retries wait (tests replace it to avoid real sleeping).
        self._sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_config(
        cls, source: str | os.PathLike[str] | EmbedConfig | None = None, **overrides: Any
    ) -> EmbeddingClient:
        """A client from a config file, Python module, env, or an ``EmbedConfig``.

        ``overrides`` may be config fields (``model=...``) or client settings
        (``max_concurrency=...``); they win over what the source says.
        """
        return cls(**cls._kwargs_from_config(source, overrides))

    # ------------------------------------------------------------ resources
    def _http(self) -> httpx.Client:
        client = self._http_client
        if client is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("This EmbeddingClient is closed; create a new one.")
                if self._http_client is None:
                    self._http_client = httpx.Client(
                        timeout=self._httpx_timeout(), limits=self._httpx_limits()
                    )
                client = self._http_client
        return client

    def _pool_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._max_concurrency, thread_name_prefix="vllm-embed"
                    )
        return self._executor

    def close(self) -> None:
        """Close the connection pool and the worker threads. Idempotent."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            http, owns = self._http_client, self._owns_http
            if owns:
                self._http_client = None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._lean is not None:
            self._lean.close()
        if http is not None and owns:
            http.close()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ retries
    def _with_retries(self, fn: Callable[[], T]) -> T:
        try:
            return call_with_retries(fn, self._retry, sleep=self._sleep, on_retry=self._on_retry)
        except RetryableStatus as exc:
            raise exc.error from None
        except APIConnectionError as exc:
            final = self._final_connection_error(exc)
            if final is exc:
                raise
            raise final from exc

    def _call(
        self, method: str, path: str, *, root: bool = False, content: bytes | None = None
    ) -> tuple[httpx.Response, Endpoint]:
        """A discovery / tokenize request on the first healthy endpoint, with failover and
        retries on connection errors and retryable statuses. Other statuses are returned."""

        def attempt() -> tuple[httpx.Response, Endpoint]:
            tried = 0
            while True:
                ep = self._pool.first()
                url = (ep.root_url if root else ep.base_url) + path
                try:
                    resp = self._http().request(method, url, content=content, headers=self._headers)
                except httpx.TransportError as exc:
                    err = self._transport_error(ep, exc)
                    tried += 1
                    if tried < len(self._pool) and not self._pool.all_down():
                        continue
                    raise err from exc
                self._check_retryable(ep, resp.status_code, resp.content, resp.headers)
                return resp, ep

        return self._with_retries(attempt)

    # ------------------------------------------------------------ discovery
    def models(self) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``), with vLLM's max_model_len."""
        resp, ep = self._call("GET", "/models")
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

    def model_name(self) -> str:
        """The model in use: the one given, else the single model the server serves."""
        if self._model is not None:
            return self._model
        with self._discovery_lock:
            if self._model is None:
                models = self._models if self._models is not None else self.models()
                self._model = self._choose_model(models, self._pool.first().display_url)
        return self._model

    def max_model_len(self) -> int | None:
        """The model's context length from ``/v1/models`` (vLLM), or None if not reported."""
        if self._max_model_len_known:
            return self._max_model_len
        model = self.model_name()
        with self._discovery_lock:
            if not self._max_model_len_known:
                models = self._models
                if models is None:
                    try:
                        models = self.models()
                    except APIStatusError:
                        models = []
                self._max_model_len = self._max_len_from(models, model)
                self._max_model_len_known = True
        return self._max_model_len

    def dimension(self) -> int:
        """The embedding dimension (probed once with one short input, then cached)."""
        if self._dimension is None:
            result = self.embed_with_info([C.DIMENSION_PROBE_TEXT])
            self._dimension = int(result.vectors.shape[1])
        return self._dimension

    def version(self) -> str | None:
        """The server's version (``GET /version``; vLLM), or None if it has no such route."""
        resp, _ = self._call("GET", "/version", root=True)
        if resp.status_code != 200:
            return None
        try:
            doc = resp.json()
        except ValueError:
            return None
        version = doc.get("version") if isinstance(doc, dict) else None
        return str(version) if version is not None else None

    def health(self) -> bool:
        """True when at least one endpoint answers ``GET /health`` with 200. Never raises."""
        ok = False
        for ep in self._pool.endpoints:
            try:
                resp = self._http().get(ep.root_url + "/health", headers=self._headers)
            except httpx.TransportError:
                self._pool.mark_down(ep)
                continue
            if resp.status_code == 200:
                self._pool.mark_up(ep)
                ok = True
        return ok

    # ------------------------------------------------------------ embedding
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as they are: a float32 array ``(len(texts), dim)`` in input order."""
        return self.embed_with_info(texts).vectors

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed documents (with the model's document instruction, if it has one)."""
        return self.embed_with_info(texts, kind="document").vectors

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query (with the model's query instruction): a ``(dim,)`` array."""
        query = self._validate_query(text)
        vectors = self.embed_with_info([query], kind="query").vectors
        return vectors[0]  # type: ignore[no-any-return]

    def embed_documents_list(self, texts: Sequence[str]) -> list[list[float]]:
        """:meth:`embed_documents` as Python lists (for frameworks that want them)."""
        result: list[list[float]] = self.embed_documents(texts).tolist()
        return result

    def embed_query_list(self, text: str) -> list[float]:
        """:meth:`embed_query` as a Python list."""
        result: list[float] = self.embed_query(text).tolist()
        return result

    def embed_with_info(self, texts: Sequence[str], *, kind: Kind = "raw") -> EmbedResult:
        """Embed and report what happened (truncated inputs, prompt tokens, model).

        ``kind``: ``"raw"`` (texts as given), ``"query"`` or ``"document"`` (instructions).
        Inputs that vLLM will truncate are counted exactly with its ``/tokenize`` route
        (only inputs long enough to possibly exceed the limit are checked). On servers
        without ``/tokenize`` the count is an estimate (about 4 UTF-8 bytes per token);
        ``count_truncated="estimate"`` / ``"off"`` estimate or skip it on purpose
        (``EmbedResult.truncation_exact`` says which you got).
        """
        items = self._validate(texts)
        try:
            model = self.model_name()
            if not items:
                return self._empty(self.dimension())
            inputs = self._apply_kind(items, kind, model)
            mml = self.max_model_len()
            plan = self._plan(inputs, mml)
            truncated = self._check_truncation(plan, model)
            out, prompt_tokens, url = self._run_batches(plan, model)
        except ModelNotFoundError as err:
            raise self._model_not_found(err, self._served_ids()) from None
        out = self._postprocess(out, url)
        exact = self._truncation_exact(plan)
        return self._result(out, truncated, prompt_tokens, model, exact=exact)

    def _served_ids(self) -> list[str] | None:
        try:
            return [m.id for m in self.models()]
        except Exception:  # best effort: the original error matters more
            return None

    def _map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> Iterator[T]:
        """Apply ``fn`` to items with up to max_concurrency in flight, yielding in order."""
        if len(items) <= 1 or self._max_concurrency == 1:
            for item in items:
                yield fn(item)
            return
        executor = self._pool_executor()
        futures: list[Future[T]] = [executor.submit(fn, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def _run_batches(self, plan: EmbedPlan, model: str) -> tuple[npt.NDArray[np.float32], int, str]:
        inputs, tpt = plan.inputs, plan.truncate_prompt_tokens
        out = Output(len(inputs))

        def one(span: tuple[int, int]) -> None:
            start, end = span
            try:
                self._embed_batch(model, inputs[start:end], tpt, out, start)
            except ContextLengthError as err:
                if err.input_index is None and end - start == 1:
                    err.input_index = start
                raise

        for _ in self._map(one, plan.batches):
            pass
        return out.result(), out.prompt_tokens, out.url

    def _embed_batch(
        self, model: str, inputs: list[str], tpt: int | None, out: Output, start: int
    ) -> None:
        """One batch into ``out[start:...]``, with failover, renegotiation and retries."""
        n = len(inputs)

        def attempt() -> None:
            failovers = 0
            for _ in range(_MAX_RENEGOTIATIONS):
                ep = self._pool.acquire()
                try:
                    encoding, body = self._request_body(ep, model, inputs, tpt)
                    self.stats.add(requests=1)
                    try:
                        if encoding == "bytes" and self._lean_ok(ep):
                            resp = self._lean_post(ep, body, out, start, n)
                            if resp is None:  # read straight into the output
                                return
                        else:
                            resp = self._http().post(
                                ep.embeddings_url, content=body, headers=self._headers
                            )
                    except httpx.TransportError as exc:
                        err = self._transport_error(ep, exc)
                        failovers += 1
                        if failovers < len(self._pool) and not self._pool.all_down():
                            continue  # another endpoint is healthy: try it now
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

        self._with_retries(attempt)

    # ------------------------------------------------------------ lean HTTP path
    def _lean_ok(self, ep: Endpoint) -> bool:
        if not self._owns_http:
            return False
        lean = self._lean
        if lean is None:
            with self._lock:
                if self._lean is None:
                    self._lean = LeanHTTP(self._timeout)
                lean = self._lean
        return lean.allowed(ep.base_url)

    def _lean_post(
        self, ep: Endpoint, body: bytes, out: Output, start: int, n: int
    ) -> httpx.Response | None:
        assert self._lean is not None
        resp = post_into(
            self._lean, ep.embeddings_url, ep.display_url, body, self._headers, out, start, n
        )
        if resp is None:
            self._pool.mark_up(ep)
            self.stats.encodings[ep.display_url] = "bytes"
        return resp

    # ------------------------------------------------------------ truncation
    def _check_truncation(self, plan: EmbedPlan, model: str) -> list[int]:
        """Indices of inputs longer than the limit (see ``count_truncated``).

        vLLM's ``/tokenize`` takes one prompt per request, so the long inputs are counted
        with up to ``max_concurrency`` requests in flight.
        """
        counts: list[int | None] = [None] * len(plan.suspects)
        if self._wants_token_counts(plan):
            texts = [plan.inputs[i] for i in plan.suspects]
            counts = list(self._map(lambda t: self._count_tokens(model, t), texts))
        return self._judge_truncation(plan, counts)

    def _count_tokens(self, model: str, text: str) -> int | None:
        """Exact token count from vLLM's ``POST /tokenize``; None if the server has none."""
        if self._pool.first().tokenize_supported is False:
            return None
        body = self._tokenize_body(model, text)
        resp, ep = self._call("POST", "/tokenize", root=True, content=body)
        return self._tokenize_count(ep, resp.status_code, resp.content)
