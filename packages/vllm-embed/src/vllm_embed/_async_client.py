"""AsyncEmbeddingClient: the asyncio twin (one httpx.AsyncClient, bounded concurrent tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
from vllm_embed._hedge import Hedge, WaitForSlot, race_async
from vllm_embed._rerank import RerankResult, check_documents, check_pairs, check_top_n, rank
from vllm_embed._retry import Sleep
from vllm_embed._tls import ssl_context
from vllm_embed._transports import (
    AsyncHttpxTransport,
    AsyncLeanTransport,
    AsyncTransport,
    choose_transport,
)
from vllm_embed._types import EmbedResult, ModelInfo

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["AsyncEmbeddingClient"]

T = TypeVar("T")
U = TypeVar("U")


class AsyncEmbeddingClient(BaseEmbeddingClient[httpx.AsyncClient]):
    """Embeddings from a vLLM (or any OpenAI-compatible) server, with asyncio.

    >>> async with AsyncEmbeddingClient("http://localhost:8000/v1") as client:
    ...     vectors = await client.embed(["hello", "world"])

    Same settings and method names as :class:`~vllm_embed.EmbeddingClient`; methods that
    talk to the server are coroutines. Up to ``max_concurrency`` requests are in flight at
    once (the lean transport on the event loop for plain ``http://`` endpoints, else a
    pooled ``httpx.AsyncClient``); results come back in input order.
    """

    def _init_io(self) -> None:
        """Connections and locks (the settings are set up by ``ClientOptions.__init__``)."""
        self._closed = False
        self._transports: dict[str, AsyncTransport] = {}
        self._lean: AsyncLeanTransport | None = None
        self._discovery_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        #: How retries wait (tests replace it to avoid real sleeping).
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | EmbedConfig | None = None,
        *,
        section: str | None = None,
        **overrides: Any,
    ) -> AsyncEmbeddingClient:
        """A client from a config file, Python module, env, or an ``EmbedConfig``.

        ``section``: the dotted path of the settings table in a TOML / JSON file
        (auto-detected when None). ``overrides`` may be config fields (``model=...``) or
        client settings (``max_concurrency=...``, ``http_client=...``); they win over what
        the source says. ``None`` overrides are ignored.
        """
        return cls(**cls._kwargs_from_config(source, overrides, section=section))

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
            timeout=self._httpx_timeout(),
            limits=self._httpx_limits(),
            verify=ssl_context(self._verify),
        )
        self._http_loop = loop
        self._discovery_lock = None
        return self._http_client

    def _transport(self, ep: Endpoint) -> AsyncTransport:
        """The transport of ``ep``, chosen on first use (see ``choose_transport``)."""
        transport = self._transports.get(ep.base_url)
        if transport is None:
            if self._closed:
                raise RuntimeError("This AsyncEmbeddingClient is closed; create a new one.")
            if choose_transport(ep.base_url, http_client_given=not self._owns_http) == "lean":
                if self._lean is None:
                    self._lean = AsyncLeanTransport(self._timeout, self._headers)
                transport = self._lean
            else:
                transport = AsyncHttpxTransport(self._http, self._headers)
            self._transports[ep.base_url] = transport
        return transport

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
        if self._lean is not None:
            await self._lean.aclose()
        if self._cache is not None:
            await asyncio.to_thread(self._close_cache)

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

    # ------------------------------------------------------------ running steps
    async def _run(self, steps: Steps[T]) -> T:
        """Run the request logic of :mod:`vllm_embed._base`: send, sleep, repeat."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                    step = steps.send(None)
                    continue
                if isinstance(step, WaitForSlot):
                    await self._pool.wait_for_slot_async()
                    step = steps.send(None)
                    continue
                if isinstance(step, Hedge):
                    send = lambda ep: self._transport(ep).send  # noqa: E731
                    step = steps.send(await race_async(step, send))
                    continue
                try:
                    if self._telemetry is None:
                        reply = await self._transport(step.endpoint).send(step.request)
                    else:
                        reply = await self._telemetry.asend(
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

    # ------------------------------------------------------------ discovery
    async def models(self) -> list[ModelInfo]:
        """The models the server serves (``GET /v1/models``), with vLLM's max_model_len."""
        return await self._run(self._models_steps())

    async def model_name(self) -> str:
        """The model in use: the one given, else the single model the server serves."""
        if self._model is not None:
            return self._model
        async with self._lock():
            if self._model is None:
                models = self._models if self._models is not None else await self.models()
                self._model = choose_model(models, self._pool.first().display_url)
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
                self._max_model_len = max_len_from(models, model)
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
        return await self._run(self._version_steps())

    async def health(self) -> bool:
        """True when at least one endpoint answers ``GET /health`` with 200. Never raises."""
        return await self._run(self._health_steps())

    # ------------------------------------------------------------ chat and images
    async def embed_messages(
        self, conversations: Sequence[Sequence[Mapping[str, Any]]]
    ) -> npt.NDArray[np.float32]:
        """One vector per conversation; see ``EmbeddingClient.embed_messages``."""
        convs = check_conversations(conversations)
        if not convs:
            return np.empty((0, 0), dtype=np.float32)
        model = await self.model_name()
        cache = self._cache
        if cache is None:
            return await self._embed_conversations(convs, model)
        space = self._messages_space(model)
        if cache.needs_probe(space):
            probe = await self._embed_items([PROBE_TEXT], "raw", model)
            cache.adopt_probe(space, probe.vectors[0])
        keys = [conversation_key(c) for c in convs]
        lookup = cache.lookup(space, keys)
        if lookup is None:  # the cache is down: the server alone
            return await self._embed_conversations(convs, model)
        miss = None
        if lookup.miss_texts:
            by_key = dict(zip(keys, convs, strict=True))
            todo = [by_key[key] for key in lookup.miss_texts]
            miss = EmbedResult(await self._embed_conversations(todo, model), 0, [], 0, model)
            if not cache.store(lookup, miss):
                return await self._embed_conversations(convs, model)
        return self._cached_result(lookup, miss, model).vectors

    async def _embed_conversations(
        self, convs: list[list[dict[str, Any]]], model: str
    ) -> npt.NDArray[np.float32]:
        rows: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(convs)

        async def one(i: int) -> npt.NDArray[np.float32]:
            return await self._run(self._chat_steps(model, convs[i]))

        def sink(i: int, row: npt.NDArray[np.float32]) -> None:
            rows[i] = row

        await self._map(one, list(range(len(convs))), sink)
        return self._chat_result(rows, self._pool.first().display_url)

    async def embed_images(
        self, images: Sequence[Any], *, text: str | None = None
    ) -> npt.NDArray[np.float32]:
        """One vector per image; see ``EmbeddingClient.embed_images``."""
        if isinstance(images, str | bytes) or not isinstance(images, Sequence):
            images = [images]
        return await self.embed_messages([image_conversation(image, text) for image in images])

    # ------------------------------------------------------------ multi-vector
    async def embed_multivector(
        self, texts: Sequence[str], *, kind: Kind = "raw"
    ) -> list[npt.NDArray[np.float32]]:
        """One ``(n_tokens_i, dim)`` array per text; see ``EmbeddingClient.embed_multivector``."""
        items = self._validate(texts)
        if not items:
            return []
        model = await self.model_name()
        inputs = self._apply_kind(items, kind, model)
        plan = self._multivector_plan(inputs, await self.max_model_len())
        out: list[npt.NDArray[np.float32]] = [np.empty((0, 0), np.float32)] * len(inputs)

        async def one(span: tuple[int, int]) -> list[npt.NDArray[np.float32]]:
            steps = self._multivector_steps(
                model, inputs[span[0] : span[1]], plan.truncate_prompt_tokens
            )
            return await self._run(steps)

        def sink(i: int, rows: list[npt.NDArray[np.float32]]) -> None:
            start, end = plan.batches[i]
            out[start:end] = rows

        await self._map(one, plan.batches, sink)
        return out

    # ------------------------------------------------------------ rerank and score
    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> list[RerankResult]:
        """Rank ``documents`` by relevance to ``query``; see ``EmbeddingClient.rerank``."""
        docs = check_documents(query, documents)
        top = check_top_n(top_n)
        if not docs:
            return []
        model = await self.model_name()
        scores = np.empty(len(docs), dtype=np.float32)

        async def one(span: tuple[int, int]) -> npt.NDArray[np.float32]:
            return await self._run(self._rerank_steps(model, query, docs[span[0] : span[1]]))

        spans = self._score_spans(len(docs))

        def sink(i: int, value: npt.NDArray[np.float32]) -> None:
            scores[spans[i][0] : spans[i][1]] = value

        await self._map(one, spans, sink)
        return rank(docs, scores, top)

    async def score(
        self, text_1: str | Sequence[str], text_2: Sequence[str]
    ) -> npt.NDArray[np.float32]:
        """Scores of pairs (vLLM's ``/score``); see ``EmbeddingClient.score``."""
        first, second = check_pairs(text_1, text_2)
        if not second:
            return np.empty(0, dtype=np.float32)
        model = await self.model_name()
        scores = np.empty(len(second), dtype=np.float32)
        spans = self._score_spans(len(second))

        async def one(span: tuple[int, int]) -> npt.NDArray[np.float32]:
            start, end = span
            left = first if isinstance(first, str) else first[start:end]
            return await self._run(self._score_steps(model, left, second[start:end]))

        def sink(i: int, value: npt.NDArray[np.float32]) -> None:
            scores[spans[i][0] : spans[i][1]] = value

        await self._map(one, spans, sink)
        return scores

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
        if self._telemetry is not None:
            return await self._telemetry.aembed_call(self, self._embed_with_info, texts, kind)
        return await self._embed_with_info(texts, kind)

    async def _embed_with_info(self, texts: Sequence[str], kind: Kind) -> EmbedResult:
        items = self._validate(texts)
        try:
            model = await self.model_name()
            if not items:
                return self._empty(await self.dimension())
            if self._cache is not None:
                return await self._embed_cached(items, kind, model)
            return await self._embed_items(items, kind, model)
        except ModelNotFoundError as err:
            raise self._model_not_found(err, await self._served_ids()) from None

    async def _embed_items(self, items: list[str], kind: Kind, model: str) -> EmbedResult:
        """Embed on the server: instructions, plan, truncation counts, batches."""
        plan = self._prepare(items, kind, model, await self.max_model_len())
        return await self._embed_plan(plan, model)

    async def _embed_cached(self, items: list[str], kind: Kind, model: str) -> EmbedResult:
        """Through the cache (its I/O in a worker thread): see the sync twin."""
        cache = self._cache
        assert cache is not None
        space = self._cache_space(kind, model, await self.max_model_len())
        if cache.needs_probe(space):
            probe = (await self._embed_items([PROBE_TEXT], "raw", model)).vectors[0]
            await asyncio.to_thread(cache.adopt_probe, space, probe)
        lookup = await asyncio.to_thread(cache.lookup, space, items)
        if lookup is None:  # the cache is down: the server alone
            return await self._embed_items(items, kind, model)
        miss = None
        if lookup.miss_texts:
            miss = await self._embed_items(lookup.miss_texts, kind, model)
            if not await asyncio.to_thread(cache.store, lookup, miss):
                return await self._embed_items(items, kind, model)  # the model changed
        return self._cached_result(lookup, miss, model)

    async def _served_ids(self) -> list[str] | None:
        try:
            return [m.id for m in await self.models()]
        except Exception:  # best effort: the original error matters more
            return None

    async def _embed_plan(self, plan: EmbedPlan, model: str) -> EmbedResult:
        """Count what will be truncated, send every batch, and assemble the result."""
        counts: list[int | None] = [None] * len(plan.suspects)
        if self._wants_token_counts(plan):
            # vLLM's /tokenize takes one prompt per request: up to max_concurrency at once.
            texts = [plan.inputs[i] for i in plan.suspects]

            async def count(text: str) -> int | None:
                return await self._run(self._count_tokens_steps(model, text))

            def sink(i: int, value: int | None) -> None:
                counts[i] = value

            await self._map(count, texts, sink)
        truncated = self._judge_truncation(plan, counts)
        inputs, tpt = plan.inputs, plan.truncate_prompt_tokens
        out = self._output(len(inputs))

        async def one(span: tuple[int, int]) -> None:
            start, end = span
            await self._run(self._batch_steps(model, inputs[start:end], tpt, out, start))

        await self._map(one, plan.batches, lambda i, _: None)
        return self._finish(plan, out, truncated, model)
