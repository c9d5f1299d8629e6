"""EmbeddingClient: the synchronous twin (httpx.Client + a thread pool for pipelining)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._base import (
    BaseEmbeddingClient,
    EmbedPlan,
    Kind,
    Steps,
)
from vllm_embed._cache import PROBE_TEXT
from vllm_embed._chat import check_conversations, conversation_key, image_conversation
from vllm_embed._discovery import choose_model, max_len_from
from vllm_embed._endpoints import Endpoint
from vllm_embed._errors import APIStatusError, ModelNotFoundError
from vllm_embed._hedge import DaemonThreads, Hedge, WaitForSlot, race_sync
from vllm_embed._rerank import RerankResult, check_documents, check_pairs, check_top_n, rank
from vllm_embed._retry import Sleep
from vllm_embed._tls import ssl_context
from vllm_embed._transports import HttpxTransport, LeanTransport, Transport, choose_transport
from vllm_embed._types import EmbedResult, ModelInfo

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["EmbeddingClient"]

T = TypeVar("T")


class EmbeddingClient(BaseEmbeddingClient[httpx.Client]):
    """Embeddings from a vLLM (or any OpenAI-compatible) server, synchronously.

    >>> with EmbeddingClient("http://localhost:8000/v1", api_key="...") as client:
    ...     vectors = client.embed(["hello", "world"])   # numpy float32 (2, dim)

    One pooled ``httpx.Client`` per client; up to ``max_concurrency`` requests are in
    flight at once (a small thread pool), results come back in input order. Safe to share
    between threads. Nothing touches the network until the first call that needs it.
    See :class:`~vllm_embed._base.BaseEmbeddingClient` for all settings.
    """

    def _init_io(self) -> None:
        """Connections and locks (the settings are set up by ``ClientOptions.__init__``)."""
        self._executor: ThreadPoolExecutor | None = None
        self._hedge_pool: DaemonThreads | None = None
        self._transports: dict[str, Transport] = {}
        self._lean: LeanTransport | None = None
        self._lock = threading.Lock()
        self._discovery_lock = threading.Lock()
        self._closed = False
        #: How retries wait (tests replace it to avoid real sleeping).
        self._sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | EmbedConfig | None = None,
        *,
        section: str | None = None,
        **overrides: Any,
    ) -> EmbeddingClient:
        """A client from a config file, Python module, env, or an ``EmbedConfig``.

        ``section``: the dotted path of the settings table in a TOML / JSON file
        (auto-detected when None). ``overrides`` may be config fields (``model=...``) or
        client settings (``max_concurrency=...``, ``http_client=...``); they win over what
        the source says. ``None`` overrides are ignored.
        """
        return cls(**cls._kwargs_from_config(source, overrides, section=section))

    # ------------------------------------------------------------ resources
    def _http(self) -> httpx.Client:
        client = self._http_client
        if client is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("This EmbeddingClient is closed; create a new one.")
                if self._http_client is None:
                    self._http_client = httpx.Client(
                        timeout=self._httpx_timeout(),
                        limits=self._httpx_limits(),
                        verify=ssl_context(self._verify),
                    )
                    # Collected unclosed (an adapter nobody closes): close the pool then,
                    # not leave its sockets to the collector (ResourceWarning).
                    weakref.finalize(self, self._http_client.close)
                client = self._http_client
        return client

    def _transport(self, ep: Endpoint) -> Transport:
        """The transport of ``ep``, chosen on first use (see ``choose_transport``)."""
        transport = self._transports.get(ep.base_url)
        if transport is None:
            with self._lock:
                transport = self._transports.get(ep.base_url)
                if transport is None:
                    if choose_transport(ep.base_url, http_client_given=not self._owns_http) == (
                        "lean"
                    ):
                        if self._lean is None:
                            self._lean = LeanTransport(self._timeout, self._headers)
                        transport = self._lean
                    else:
                        transport = HttpxTransport(self._http, self._headers)
                    self._transports[ep.base_url] = transport
        return transport

    def _pool_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._max_concurrency, thread_name_prefix="vllm-embed"
                    )
        return self._executor

    def _hedge_executor(self) -> DaemonThreads:
        """Threads for hedged requests (both of a race run there; a loser keeps its thread,
        and that thread's own connection, until its answer or timeout comes)."""
        if self._hedge_pool is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("This EmbeddingClient is closed; create a new one.")
                if self._hedge_pool is None:
                    self._hedge_pool = DaemonThreads(
                        4 * self._max_concurrency + 4, "vllm-embed-hedge"
                    )
                    weakref.finalize(self, self._hedge_pool.shutdown)  # collected unclosed
        return self._hedge_pool

    def close(self) -> None:
        """Close the connection pool and the worker threads. Idempotent."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            hedge_pool, self._hedge_pool = self._hedge_pool, None
            http, owns = self._http_client, self._owns_http
            if owns:
                self._http_client = None
            lean = self._lean
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if hedge_pool is not None:  # losers still waiting on a slow server are not waited for
            hedge_pool.shutdown()
        if lean is not None:
            lean.close()
        if http is not None and owns:
            http.close()
        self._close_cache()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ running steps
    def _run(self, steps: Steps[T]) -> T:
        """Run the request logic of :mod:`vllm_embed._base`: send, sleep, repeat."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    self._sleep(step.seconds)
                    step = steps.send(None)
                    continue
                if isinstance(step, WaitForSlot):
                    self._pool.wait_for_slot()
                    step = steps.send(None)
                    continue
                if isinstance(step, Hedge):
                    send = lambda ep: self._transport(ep).send  # noqa: E731
                    step = steps.send(race_sync(step, send, self._hedge_executor()))
                    continue
                try:
                    if self._telemetry is None:
                        reply = self._transport(step.endpoint).send(step.request)
                    else:
                        reply = self._telemetry.send(
                            step.endpoint,
                            step.request,
                            self._transport(step.endpoint).send,
                            self._model,
                        )
                except BaseException as exc:  # the steps decide: failover, retry or raise
                    step = steps.throw(exc)
                else:
                    step = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result

    def _map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> Iterator[T]:
        """Apply ``fn`` to items with up to max_concurrency in flight, yielding in order."""
        if len(items) <= 1 or self._max_concurrency == 1:
            for item in items:
                yield fn(item)
            return
        executor = self._pool_executor()
        if self._telemetry is None:
            futures: list[Future[T]] = [executor.submit(fn, item) for item in items]
        else:  # the embed call's span is the parent of the requests made in the threads
            futures = [self._telemetry.submit(executor, fn, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    # ------------------------------------------------------------ discovery
    def models(self) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``), with vLLM's max_model_len."""
        return self._run(self._models_steps())

    def model_name(self) -> str:
        """The model in use: the one given, else the single model the server serves."""
        if self._model is not None:
            return self._model
        with self._discovery_lock:
            if self._model is None:
                models = self._models if self._models is not None else self.models()
                self._model = choose_model(models, self._pool.first().display_url)
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
                self._max_model_len = max_len_from(models, model)
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
        return self._run(self._version_steps())

    def health(self) -> bool:
        """True when at least one endpoint answers ``GET /health`` with 200. Never raises."""
        return self._run(self._health_steps())

    # ------------------------------------------------------------ chat and images
    def embed_messages(
        self, conversations: Sequence[Sequence[Mapping[str, Any]]]
    ) -> npt.NDArray[np.float32]:
        """One vector per conversation (``messages`` on ``/v1/embeddings``, rendered with
        the model's chat template or the server's ``--chat-template``): float32
        ``(n, dim)``, in input order. Content may mix text and ``image_url`` parts
        (:meth:`embed_images` builds them). Raises
        :class:`~vllm_embed.InputNotSupportedError` when the server has no chat template or
        the model takes no images."""
        convs = check_conversations(conversations)
        if not convs:
            return np.empty((0, 0), dtype=np.float32)
        model = self.model_name()
        cache = self._cache
        if cache is None:
            return self._embed_conversations(convs, model)
        space = self._messages_space(model)
        if cache.needs_probe(space):
            cache.adopt_probe(space, self._embed_items([PROBE_TEXT], "raw", model).vectors[0])
        keys = [conversation_key(c) for c in convs]
        lookup = cache.lookup(space, keys)
        if lookup is None:  # the cache is down: the server alone
            return self._embed_conversations(convs, model)
        miss = None
        if lookup.miss_texts:
            by_key = dict(zip(keys, convs, strict=True))
            todo = [by_key[key] for key in lookup.miss_texts]
            miss = EmbedResult(self._embed_conversations(todo, model), 0, [], 0, model)
            if not cache.store(lookup, miss):
                return self._embed_conversations(convs, model)
        return self._cached_result(lookup, miss, model).vectors

    def _embed_conversations(
        self, convs: list[list[dict[str, Any]]], model: str
    ) -> npt.NDArray[np.float32]:
        rows: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(convs)

        def one(i: int) -> None:
            rows[i] = self._run(self._chat_steps(model, convs[i]))

        for _ in self._map(one, range(len(convs))):
            pass
        return self._chat_result(rows, self._pool.first().display_url)

    def embed_images(
        self, images: Sequence[Any], *, text: str | None = None
    ) -> npt.NDArray[np.float32]:
        """One vector per image (a path, bytes, a PIL image or an http(s):// URL; local
        images are sent as data: URIs), each with ``text`` after it when given."""
        if isinstance(images, str | bytes) or not isinstance(images, Sequence):
            images = [images]
        return self.embed_messages([image_conversation(image, text) for image in images])

    # ------------------------------------------------------------ multi-vector
    def embed_multivector(
        self, texts: Sequence[str], *, kind: Kind = "raw"
    ) -> list[npt.NDArray[np.float32]]:
        """One ``(n_tokens_i, dim)`` float32 array per text, in input order: late
        interaction (ColBERT-style), from a vLLM server started with ``--pooler-config
        '{"task": "token_embed"}'`` (``/pooling``). ``kind`` applies the model's query /
        document instruction as for :meth:`embed_with_info`. Score with
        :func:`vllm_embed.maxsim`."""
        items = self._validate(texts)
        if not items:
            return []
        model = self.model_name()
        inputs = self._apply_kind(items, kind, model)
        plan = self._multivector_plan(inputs, self.max_model_len())
        out: list[npt.NDArray[np.float32]] = [np.empty((0, 0), np.float32)] * len(inputs)

        def one(span: tuple[int, int]) -> None:
            start, end = span
            steps = self._multivector_steps(model, inputs[start:end], plan.truncate_prompt_tokens)
            out[start:end] = self._run(steps)

        for _ in self._map(one, plan.batches):
            pass
        return out

    # ------------------------------------------------------------ rerank and score
    def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Rank ``documents`` by relevance to ``query`` (vLLM's ``/rerank``, or Jina's,
        Cohere's, TEI's shape: negotiated per server). Results come highest score first,
        each with its ``index`` in ``documents``, ``score`` and ``document``; ``top_n``
        keeps the best ones. Long lists are sent in batches of ``batch_size``."""
        docs = check_documents(query, documents)
        top = check_top_n(top_n)
        if not docs:
            return []
        model = self.model_name()
        scores = np.empty(len(docs), dtype=np.float32)

        def one(span: tuple[int, int]) -> None:
            start, end = span
            scores[start:end] = self._run(self._rerank_steps(model, query, docs[start:end]))

        for _ in self._map(one, self._score_spans(len(docs))):
            pass
        return rank(docs, scores, top)

    def score(self, text_1: str | Sequence[str], text_2: Sequence[str]) -> npt.NDArray[np.float32]:
        """Scores of pairs (vLLM's ``/score``): ``text_1`` against every text of ``text_2``,
        or two equal-length lists pairwise. float32, in input order."""
        first, second = check_pairs(text_1, text_2)
        if not second:
            return np.empty(0, dtype=np.float32)
        model = self.model_name()
        scores = np.empty(len(second), dtype=np.float32)

        def one(span: tuple[int, int]) -> None:
            start, end = span
            left = first if isinstance(first, str) else first[start:end]
            scores[start:end] = self._run(self._score_steps(model, left, second[start:end]))

        for _ in self._map(one, self._score_spans(len(second))):
            pass
        return scores

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
        if self._telemetry is not None:
            return self._telemetry.embed_call(self, self._embed_with_info, texts, kind)
        return self._embed_with_info(texts, kind)

    def _embed_with_info(self, texts: Sequence[str], kind: Kind) -> EmbedResult:
        items = self._validate(texts)
        try:
            model = self.model_name()
            if not items:
                return self._empty(self.dimension())
            if self._cache is not None:
                return self._embed_cached(items, kind, model)
            return self._embed_items(items, kind, model)
        except ModelNotFoundError as err:
            raise self._model_not_found(err, self._served_ids()) from None

    def _embed_items(self, items: list[str], kind: Kind, model: str) -> EmbedResult:
        """Embed on the server: instructions, plan, truncation counts, batches."""
        plan = self._prepare(items, kind, model, self.max_model_len())
        return self._embed_plan(plan, model)

    def _embed_cached(self, items: list[str], kind: Kind, model: str) -> EmbedResult:
        """Through the cache: one lookup round, only the (unique) misses to the server."""
        cache = self._cache
        assert cache is not None
        space = self._cache_space(kind, model, self.max_model_len())
        if cache.needs_probe(space):
            cache.adopt_probe(space, self._embed_items([PROBE_TEXT], "raw", model).vectors[0])
        lookup = cache.lookup(space, items)
        if lookup is None:  # the cache is down: the server alone
            return self._embed_items(items, kind, model)
        miss = self._embed_items(lookup.miss_texts, kind, model) if lookup.miss_texts else None
        if miss is not None and not cache.store(lookup, miss):
            return self._embed_items(items, kind, model)  # the model changed under us
        return self._cached_result(lookup, miss, model)

    def _served_ids(self) -> list[str] | None:
        try:
            return [m.id for m in self.models()]
        except Exception:  # best effort: the original error matters more
            return None

    def _embed_plan(self, plan: EmbedPlan, model: str) -> EmbedResult:
        """Count what will be truncated, send every batch, and assemble the result."""
        counts: list[int | None] = [None] * len(plan.suspects)
        if self._wants_token_counts(plan):
            # vLLM's /tokenize takes one prompt per request: up to max_concurrency at once.
            texts = [plan.inputs[i] for i in plan.suspects]
            counts = list(self._map(lambda t: self._run(self._count_tokens_steps(model, t)), texts))
        truncated = self._judge_truncation(plan, counts)
        inputs, tpt = plan.inputs, plan.truncate_prompt_tokens
        out = self._output(len(inputs))

        def one(span: tuple[int, int]) -> None:
            start, end = span
            self._run(self._batch_steps(model, inputs[start:end], tpt, out, start))

        for _ in self._map(one, plan.batches):
            pass
        return self._finish(plan, out, truncated, model)
