"""BaseEmbeddingClient: everything both twins share that does no I/O.

Settings and their validation, request headers and bodies, response handling and error
mapping, the plan for one ``embed`` call (instructions, truncation, batches), failover,
renegotiation, retries and putting the results back together.

The request logic is written once, as generators of *steps* (``..._steps`` methods): a step
is :class:`Send` (one HTTP request to one endpoint; the twin sends the transport's
:class:`~vllm_embed._transports.Reply` back in, or throws the network error in) or
:class:`~vllm_embed._retry.Sleep`. :mod:`vllm_embed._client` and
:mod:`vllm_embed._async_client` only run those steps (``_run``: blocking or awaiting),
spread batches over threads or tasks (``_map``) and own the connections.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._batching import plan_batches, validate_texts
from vllm_embed._cache import ClientCache, EmbeddingCache, Lookup, Space
from vllm_embed._chat import chat_steps
from vllm_embed._endpoints import Endpoint, EndpointPool, redact_url
from vllm_embed._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigValueError,
    ContextLengthError,
    DimensionsNotSupportedError,
    InvalidInputError,
    ModelNotFoundError,
    NoHealthyEndpointError,
    VectorWidthError,
)
from vllm_embed._hedge import Hedge, HedgeDelay, WaitForSlot, hedge_setting, hedged_send_steps
from vllm_embed._http_errors import error_from_response, is_dimensions_refused
from vllm_embed._instructions import Instructions, resolve_instructions
from vllm_embed._multivector import (
    MAX_BATCH,
    MULTIVECTOR_ENCODINGS,
    MultiVectorState,
    multivector_steps,
)
from vllm_embed._rerank import RerankRoutes, rerank_steps, score_steps
from vllm_embed._retry import (
    RetryableStatus,
    Sleep,
    is_retryable_status,
    parse_retry_after,
    retrying,
)
from vllm_embed._settings import client_kwargs_from_env
from vllm_embed._telemetry import Registry, Telemetry
from vllm_embed._tls import Verify, certificate_error, check_verify
from vllm_embed._transports import Reply, Request
from vllm_embed._types import ClientStats, EmbedResult, ModelInfo, RetryPolicy, Secret, Timeout
from vllm_embed._wire import (
    Decoded,
    Layout,
    build_body,
    decode_response,
    direct_layout,
    parse_error_body,
    preference_for,
    rejects_encoding,
    unframed_layout,
)

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["BaseEmbeddingClient", "EmbedPlan", "Kind", "Output", "Send", "Steps"]

logger = logging.getLogger("vllm_embed")

Kind = Literal["raw", "query", "document"]
Encoding = Literal["auto", "bytes_only", "bytes", "base64", "float"]
EmbedDType = Literal["float32", "float16"]
Truncate = Literal["end", "error"]
CountTruncated = Literal["exact", "estimate", "off"]

#: from_config overrides passed to the client as they are (not config-file settings).
_DIRECT_OVERRIDES = frozenset({"retry", "http_client", "count_truncated", "cache", "verify"})


T = TypeVar("T")
Ctx = TypeVar("Ctx")

#: The most times one batch is re-sent at once because the endpoint refused something
#: optional (an encoding, ``dimensions``, ``truncate_prompt_tokens``).
_MAX_RENEGOTIATIONS = 6


class Renegotiate(Exception):
    """Internal: the endpoint refused something optional; send the batch again at once."""


@dataclass(slots=True)
class Send:
    """A step: send ``request`` with the transport of ``endpoint``."""

    endpoint: Endpoint
    request: Request


#: A generator of steps returning T: the twins run it (``_run``), sending each Send's Reply
#: back in (or throwing its network error in) and sleeping for each Sleep. With several
#: endpoints also :class:`~vllm_embed._hedge.Hedge` (a race, its Outcome sent back in) and
#: :class:`~vllm_embed._hedge.WaitForSlot` (every endpoint at its cap: wait).
Steps: TypeAlias = Generator[Send | Sleep | Hedge | WaitForSlot, Any, T]


@dataclass
class EmbedPlan:
    """What one embed call will send: the final inputs and how to split them."""

    inputs: list[str]
    batches: list[tuple[int, int]]
    truncate_prompt_tokens: int | None
    #: Inputs that may exceed the context and need an exact token count (``/tokenize``).
    suspects: list[int]
    limit: int | None


def _positive_int(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class BaseEmbeddingClient:
    """Settings and the I/O-free half of the embedding client.

    Use :class:`~vllm_embed.EmbeddingClient` or :class:`~vllm_embed.AsyncEmbeddingClient`;
    both take exactly these settings (the one place they are documented). Nothing here
    touches the network. A setting not given (``None``) comes from the environment, read
    exactly as :func:`~vllm_embed.load_config` reads it (:mod:`vllm_embed._settings`: our
    ``VLLM_EMBED_*`` variables, then other tools' ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``,
    ``VLLM_API_KEY``, ``OPENAI_API_KEY``), else from the default below.

    Args:
        base_url: The server's OpenAI-style URL (``http://host:8000/v1``; ``/v1`` is added
            when missing), or a list of them: batches then go to the healthy server with
            the fewest requests in flight, and a server that refuses connections is left
            alone for a cool-down. Default: ``VLLM_EMBED_BASE_URL`` (comma-separated for
            several), then ``OPENAI_BASE_URL``, then ``OPENAI_API_BASE``.
        api_key: Sent as ``Authorization: Bearer ...``. Default: ``VLLM_EMBED_API_KEY``,
            ``VLLM_API_KEY``, then ``OPENAI_API_KEY``. Never shown in reprs, errors or logs.
        model: The served model name. Default: ``VLLM_EMBED_MODEL``, else the one model
            ``/v1/models`` lists (an error names them when there are several).
        headers: Extra request headers; an explicit ``Authorization`` wins over ``api_key``.
        timeout: :class:`Timeout` or seconds per request (default ``VLLM_EMBED_TIMEOUT``,
            else 60 s; connect 5 s).
        retry: :class:`RetryPolicy` (default 5 attempts, backoff 0.5 s doubling to 8 s,
            Retry-After honoured, at most 120 s in all; ``VLLM_EMBED_RETRIES`` retries and
            ``VLLM_EMBED_BACKOFF_FACTOR`` change it). ``RetryPolicy.none()`` disables.
        batch_size: Inputs per request (default ``VLLM_EMBED_BATCH_SIZE``, else 256; vLLM
            batches across requests itself).
        max_tokens_per_request: Estimated tokens per request (default 16384; ``None``:
            count only). Keeps batches of long texts under server limits.
        max_concurrency: Requests in flight at once (default ``VLLM_EMBED_MAX_CONCURRENCY``,
            else 8; the sync client uses a small thread pool). Results always come back in
            input order.
        encoding: ``"auto"`` negotiates vLLM ``bytes_only`` > ``bytes`` > ``base64`` >
            ``float`` per server and remembers it; or force one. A proxy that refuses a
            binary answer (nginx's 502 "upstream sent too big header", 413, 431) makes the
            client ask the next encoding at once, and remember it for that server.
        embed_dtype: ``"float16"`` halves the transfer with vLLM's binary encodings
            (results are still float32 arrays).
        dimensions: Matryoshka output size (default ``VLLM_EMBED_DIMENSIONS``), sent to the
            server. vLLM refuses it for models
            not loaded as Matryoshka (:class:`~vllm_embed.DimensionsNotSupportedError`).
        client_side_dimensions: When the server refuses (or ignores) ``dimensions``,
            truncate to ``dimensions`` and re-normalise on the client instead.
        truncate: ``"end"`` (default) lets vLLM cut inputs to ``max_model_len - 1`` tokens
            (``truncate_prompt_tokens``; one below the limit because of vLLM issue 29496)
            and counts them (:meth:`embed_with_info`); ``"error"`` raises
            :class:`~vllm_embed.ContextLengthError` naming the input, instead.
        count_truncated: How inputs cut by the server are counted (``EmbedResult.truncated``).
            Only inputs long enough to possibly exceed the limit are ever looked at.
            ``"exact"`` (default) asks vLLM's ``/tokenize`` once per such input (up to
            ``max_concurrency`` at a time); ``"estimate"`` guesses from the length (about
            4 UTF-8 bytes per token, no extra requests); ``"off"`` does not count. With
            ``"estimate"`` / ``"off"``, ``EmbedResult.truncation_exact`` is False when there
            were such inputs, and ``truncate="error"`` leaves the check to the server (its
            400 becomes :class:`~vllm_embed.ContextLengthError`). For bulk jobs of long
            texts, ``"estimate"`` or ``"off"`` saves one request per long input.
        instructions: ``"auto"`` picks query/document prefixes from the model name
            (Qwen3-Embedding, E5, BGE v1.5 English, Jina v3/v4, nomic-embed; others: none);
            a preset name, an :class:`~vllm_embed.Instructions`, or ``None`` (off). Only
            ``embed_query`` / ``embed_documents`` (and ``kind=``) apply them.
        normalize: L2-normalise every vector on the client.
        cache: A per-text embedding cache: a path or ``sqlite:///path`` (SQLite),
            ``redis://host:port/db`` / ``rediss://...`` (``pip install
            'vllm-embed[redis]'``), or an :class:`~vllm_embed.EmbeddingCache` for size
            limit, TTL, dtype, namespace and ``strict``. Only texts not cached go to the
            server; keys cover the served model (re-checked once per client with a probe
            vector), role, instruction, dimensions, normalisation, truncation and dtype.
            Default ``None``: no cache. ``VLLM_EMBED_CACHE`` / the config's ``cache``.
        verify: TLS verification for ``https://`` URLs: ``True`` (default; honours
            ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, ``REQUESTS_CA_BUNDLE``), the path of a CA
            bundle (a private CA), an ``ssl.SSLContext``, or ``False`` (off). A certificate
            that does not verify raises :class:`~vllm_embed.TLSCertificateError` at once.
        tracing: OpenTelemetry spans: one per embed call (GenAI conventions: ``embeddings
            {model}``, tokens, dimension, server) and one per HTTP request as its child.
            Needs ``pip install 'vllm-embed[otel]'``; your app sets up the SDK and
            exporter. Default ``VLLM_EMBED_TRACING``, else off (then nothing is imported
            and nothing is recorded).
        metrics: Prometheus metrics (requests, latency, tokens, vectors, retries,
            failovers, cache hits and misses; per endpoint and model): ``True`` registers
            them in prometheus_client's default registry, or pass your own
            ``CollectorRegistry``. Needs ``pip install 'vllm-embed[metrics]'``. Default
            ``VLLM_EMBED_METRICS``, else off. See :mod:`vllm_embed._telemetry`.
        max_in_flight_per_endpoint: With several base URLs, the most requests in flight on
            one server (default ``VLLM_EMBED_MAX_IN_FLIGHT_PER_ENDPOINT``, else no cap).
            When every server is at it, a request waits for one to finish. (Independently,
            a server whose requests time out twice in a row is taken out for a cool-down
            and then tried with one request before it gets more: ``stats.endpoints_ejected``,
            ``stats.half_open_probes``.)
        hedge: Hedged requests for small, latency-sensitive calls when there are several
            base URLs: ``embed_query`` and any call that is one batch of at most 8 inputs.
            When the first answer is late, the same request goes to another server too;
            the first answer wins, the other is cancelled. ``True``: late means later
            than the p95 of recent answer times (learned, at least 1 ms); a number: that
            many seconds; ``False`` (default): off. ``VLLM_EMBED_HEDGE`` (``on`` / ``off``
            / seconds). Counted in ``stats.hedges`` / ``stats.hedges_won``. Never with one
            base URL; batch embedding is never hedged.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        *,
        api_key: str | Secret | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        max_tokens_per_request: int | None = C.DEFAULT_MAX_TOKENS_PER_REQUEST,
        max_concurrency: int | None = None,
        encoding: Encoding = "auto",
        embed_dtype: EmbedDType = "float32",
        dimensions: int | None = None,
        client_side_dimensions: bool = False,
        truncate: Truncate = "end",
        count_truncated: CountTruncated = "exact",
        instructions: Instructions | str | None = "auto",
        normalize: bool = False,
        cache: EmbeddingCache | str | os.PathLike[str] | None = None,
        verify: Verify = True,
        tracing: bool | None = None,
        metrics: bool | Registry | None = None,
        max_in_flight_per_endpoint: int | None = None,
        hedge: bool | float | None = None,
    ) -> None:
        given = {
            "base_url": base_url,
            "api_key": api_key,
            "model": model,
            "headers": headers,
            "timeout": timeout,
            "retry": retry,
            "batch_size": batch_size,
            "max_concurrency": max_concurrency,
            "dimensions": dimensions,
            "cache": cache,
            "tracing": tracing,
            "metrics": metrics,
            "max_in_flight_per_endpoint": max_in_flight_per_endpoint,
            "hedge": hedge,
        }
        # Settings not given come from the environment, resolved as load_config does.
        env = client_kwargs_from_env({k for k, v in given.items() if v is not None})
        base_url = base_url if base_url is not None else env.get("base_url")
        api_key = api_key if api_key is not None else env.get("api_key")
        model = model if model is not None else env.get("model")
        timeout = timeout if timeout is not None else env.get("timeout")
        retry = retry if retry is not None else env.get("retry")
        batch_size = batch_size if batch_size is not None else env.get("batch_size")
        max_concurrency = (
            max_concurrency if max_concurrency is not None else env.get("max_concurrency")
        )
        dimensions = dimensions if dimensions is not None else env.get("dimensions")
        cache = cache if cache is not None else env.get("cache")
        tracing = tracing if tracing is not None else env.get("tracing", False)
        metrics = metrics if metrics is not None else env.get("metrics", False)
        if max_in_flight_per_endpoint is None:
            max_in_flight_per_endpoint = env.get("max_in_flight_per_endpoint")
        hedge = hedge if hedge is not None else env.get("hedge", False)

        if base_url is None:
            raise ConfigValueError(
                "No base_url given. Pass base_url='http://host:8000/v1' or set "
                "VLLM_EMBED_BASE_URL (or OPENAI_BASE_URL)."
            )
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if encoding != "auto" and encoding not in C.ENCODING_PREFERENCE:
            raise ConfigValueError(
                "encoding must be 'auto', 'bytes_only', 'bytes', 'base64' or 'float', "
                f"got {encoding!r}"
            )
        self.stats = ClientStats()
        self._pool = EndpointPool(
            urls,
            preference_for(encoding),
            max_in_flight=_positive_int(
                "max_in_flight_per_endpoint", max_in_flight_per_endpoint, allow_none=True
            ),
            stats=self.stats,
        )
        self._hedge_setting = hedge_setting(hedge)
        #: The hedge delay, when hedging is on and there is another endpoint to hedge to.
        self._hedge: HedgeDelay | None = None
        if self._hedge_setting is not False and len(self._pool) > 1:
            fixed = None if self._hedge_setting is True else float(self._hedge_setting)
            self._hedge = HedgeDelay(fixed)

        if isinstance(api_key, str):
            api_key = Secret(api_key) if api_key else None
        elif isinstance(api_key, Secret) and not api_key:
            api_key = None
        elif api_key is not None and not isinstance(api_key, Secret):
            raise ConfigValueError("api_key must be a string or a vllm_embed.Secret")
        self._api_key: Secret | None = api_key

        if model is not None and (not isinstance(model, str) or not model):
            raise ConfigValueError(f"model must be a non-empty string, got {model!r}")
        self._model: str | None = model
        self._timeout = Timeout.coerce(timeout)
        self._retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self._retry, RetryPolicy):
            raise ConfigValueError("retry must be a vllm_embed.RetryPolicy")
        self._batch_size = int(
            _positive_int("batch_size", C.DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
            or 1
        )
        self._max_tokens = _positive_int(
            "max_tokens_per_request", max_tokens_per_request, allow_none=True
        )
        self._max_concurrency = int(
            _positive_int(
                "max_concurrency",
                C.DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
            )
            or 1
        )
        if embed_dtype not in ("float32", "float16"):
            raise ConfigValueError(
                f"embed_dtype must be 'float32' or 'float16', got {embed_dtype!r}"
            )
        self._embed_dtype: EmbedDType = embed_dtype
        self._dimensions = _positive_int("dimensions", dimensions, allow_none=True)
        self._client_side_dimensions = bool(client_side_dimensions)
        if truncate not in ("end", "error"):
            raise ConfigValueError(f"truncate must be 'end' or 'error', got {truncate!r}")
        self._truncate: Truncate = truncate
        if count_truncated not in ("exact", "estimate", "off"):
            raise ConfigValueError(
                f"count_truncated must be 'exact', 'estimate' or 'off', got {count_truncated!r}"
            )
        self._count_truncated: CountTruncated = count_truncated
        if instructions is not None and not isinstance(instructions, Instructions | str):
            raise ConfigValueError(
                "instructions must be 'auto', a preset name, Instructions or None"
            )
        if isinstance(instructions, str) and instructions != "auto":
            resolve_instructions(instructions, "")  # fail fast on unknown preset names
        self._instructions_spec = instructions
        self._instructions: Instructions | None = None
        self._normalize = bool(normalize)
        self._verify: Verify = check_verify(verify)
        #: The row width this client's server answers with, learned from its first
        #: answer; an answer of another width is a VectorWidthError.
        self._wire_width: int | None = None
        self._rerank_routes = RerankRoutes()
        self._multivector = MultiVectorState(
            MULTIVECTOR_ENCODINGS if encoding in ("auto", "bytes_only") else (encoding,)
        )

        self._headers = self._build_headers(headers)
        self._models: list[ModelInfo] | None = None
        self._max_model_len: int | None = None
        self._max_model_len_known = False
        self._dimension: int | None = None
        cache_obj, owned = EmbeddingCache.coerce(cache)
        self._cache: ClientCache | None = (
            ClientCache(cache_obj, self.stats, owned=owned) if cache_obj is not None else None
        )
        #: Spans and metrics, or None when both are off (every hook checks only that).
        self._telemetry: Telemetry | None = Telemetry.create(bool(tracing), metrics)

    # ----------------------------------------------------------------- settings
    def _build_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, application/octet-stream",
            "User-Agent": C.USER_AGENT,
        }
        has_auth = False
        for key, value in (extra or {}).items():
            headers[str(key)] = str(value)
            has_auth = has_auth or str(key).lower() == "authorization"
        if self._api_key and not has_auth:
            headers["Authorization"] = f"Bearer {self._api_key.get()}"
        return headers

    def _httpx_timeout(self) -> httpx.Timeout:
        t = self._timeout
        return httpx.Timeout(t.total, connect=t.connect)

    def _httpx_limits(self) -> httpx.Limits:
        conns = max(self._max_concurrency * len(self._pool), 4)
        return httpx.Limits(max_connections=conns + 4, max_keepalive_connections=conns + 4)

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The configured base URLs (credentials removed)."""
        return tuple(ep.display_url for ep in self._pool.endpoints)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy in use."""
        return self._retry

    @property
    def requested_dimensions(self) -> int | None:
        """The ``dimensions`` setting (Matryoshka), or None."""
        return self._dimensions

    def __repr__(self) -> str:
        urls = ", ".join(self.base_urls)
        key = ", api_key='***'" if self._api_key else ""
        return f"{type(self).__name__}(base_url=[{urls}], model={self._model!r}{key})"

    @classmethod
    def _kwargs_from_config(
        cls,
        source: str | os.PathLike[str] | EmbedConfig | None,
        overrides: Mapping[str, Any],
        *,
        section: str | None = None,
    ) -> dict[str, Any]:
        """Client kwargs from ``load_config(source, section=..., overrides=...)``.

        Overrides that only the client understands (``retry=RetryPolicy(...)``,
        ``timeout=Timeout(...)``, ``http_client=...``, ``count_truncated=...``) are applied
        after the config.
        """
        from vllm_embed._config import load_config

        direct = {
            k: v
            for k, v in overrides.items()
            if v is not None and (k in _DIRECT_OVERRIDES or isinstance(v, Timeout | RetryPolicy))
        }
        rest = {k: v for k, v in overrides.items() if k not in direct}
        config = load_config(source, section=section, overrides=rest or None)
        kwargs = dict(config.client_kwargs())
        kwargs.update(direct)
        return kwargs

    # ------------------------------------------------------------- discovery
    @staticmethod
    def _parse_models(doc: Any, url: str) -> list[ModelInfo]:
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise APIError(
                f"{url}/models did not return an OpenAI-style model list. Check base_url.",
                url=url,
            )
        out = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            mml = item.get("max_model_len")
            out.append(
                ModelInfo(
                    id=item["id"],
                    max_model_len=int(mml) if isinstance(mml, int) and mml > 0 else None,
                    owned_by=item.get("owned_by")
                    if isinstance(item.get("owned_by"), str)
                    else None,
                )
            )
        return out

    def _choose_model(self, models: list[ModelInfo], url: str) -> str:
        if len(models) == 1:
            return models[0].id
        if not models:
            raise ConfigValueError(
                f"The server at {url} serves no models. Pass model=... explicitly."
            )
        names = ", ".join(m.id for m in models)
        raise ConfigValueError(
            f"No model given and the server at {url} serves several: {names}. "
            "Pass model=<one of them>."
        )

    def _max_len_from(self, models: list[ModelInfo], model: str) -> int | None:
        for info in models:
            if info.id == model:
                return info.max_model_len
        return None

    # ------------------------------------------------------------- planning
    def instructions_for(self, model: str) -> Instructions:
        """The query / document prefixes this client applies to ``model`` (no I/O).

        ``instructions="auto"`` resolves from the model name once; an explicit preset,
        :class:`Instructions` or ``None`` (no prefixes) is returned as configured.
        """
        if self._instructions is None:
            self._instructions = resolve_instructions(self._instructions_spec, model)
        return self._instructions

    _instructions_for = instructions_for

    @property
    def normalize(self) -> bool:
        """True when the client L2-normalises every vector itself."""
        return self._normalize

    @property
    def cache(self) -> EmbeddingCache | None:
        """The embedding cache in use (``cache=...``), or None."""
        return self._cache.cache if self._cache is not None else None

    def _cache_space(self, kind: Kind, model: str, max_model_len: int | None) -> Space:
        """Everything that changes the vector of a text of this kind (the cache key)."""
        assert self._cache is not None
        instruction = ""
        if kind == "query":
            instruction = self.instructions_for(model).query
        elif kind == "document":
            instruction = self.instructions_for(model).document
        return Space(
            model=model,
            role=kind,
            instruction=instruction,
            dimensions=self._dimensions,
            client_side_dimensions=self._client_side_dimensions,
            normalize=self._normalize,
            truncate=self._truncate,
            limit=self._truncation_limit(max_model_len),
            transfer_dtype=self._embed_dtype,
            storage_dtype=self._cache.cache.dtype,
            namespace=self._cache.cache.namespace,
        )

    def _cached_result(self, lookup: Lookup, miss: EmbedResult | None, model: str) -> EmbedResult:
        """Hits and misses in input order; the hits count as inputs served."""
        result = lookup.assemble(miss, model)
        if self._telemetry is not None:
            self._telemetry.cache(model, len(lookup.hit_positions), len(lookup.miss_texts))
        if self._dimension is None:
            self._dimension = lookup.dim
        return result

    def _close_cache(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def _apply_kind(self, items: list[str], kind: Kind, model: str) -> list[str]:
        if kind == "raw":
            return items
        instr = self._instructions_for(model)
        if kind == "query":
            return instr.apply_query(items)
        if kind == "document":
            return instr.apply_document(items)
        raise InvalidInputError(f"kind must be 'raw', 'query' or 'document', got {kind!r}")

    @staticmethod
    def _validate(texts: object) -> list[str]:
        return validate_texts(texts)

    @staticmethod
    def _validate_query(text: object) -> str:
        if not isinstance(text, str):
            what = "None" if text is None else f"a {type(text).__name__}"
            raise InvalidInputError(
                f"embed_query() takes one string, got {what}. For several texts use embed()."
            )
        return text

    def _truncation_limit(self, max_model_len: int | None) -> int | None:
        """Tokens an input may have: max_model_len - 1 (vLLM issue 29496), or None."""
        if max_model_len is None or max_model_len < 2:
            return None
        return max_model_len - 1

    def _plan(self, inputs: list[str], max_model_len: int | None) -> EmbedPlan:
        limit = self._truncation_limit(max_model_len)
        suspects: list[int] = []
        if limit is not None and inputs and max(map(len, inputs)) * 4 + 2 >= limit:
            # Each token covers at least one UTF-8 byte, plus at most 2 special tokens:
            # an input with bytes + 2 < limit cannot exceed the limit. Cheap len() first.
            for i, text in enumerate(inputs):
                if len(text) * 4 + 2 >= limit and len(text.encode("utf-8")) + 2 >= limit:
                    suspects.append(i)
        tpt = limit if (self._truncate == "end" and limit is not None) else None
        batches = plan_batches(inputs, self._batch_size, self._max_tokens, token_cap=limit)
        return EmbedPlan(inputs, batches, tpt, suspects, limit)

    def _context_error(self, index: int, count: int, limit: int, url: str) -> ContextLengthError:
        return ContextLengthError(
            f"Input {index} has {count} tokens; the client allows at most {limit} "
            f"(max_model_len {limit + 1} minus one, see vLLM issue 29496) for the model on "
            f"{url}. Shorten it, or use truncate='end' (the default) to let the server cut it.",
            url=url,
            status_code=400,
            body=None,
            max_model_len=limit + 1,
            input_index=index,
        )

    @staticmethod
    def _estimate_too_long(text: str, limit: int) -> bool:
        """Fallback when the server has no /tokenize: about 4 UTF-8 bytes per token."""
        return math.ceil(len(text.encode("utf-8")) / 4) + 2 > limit

    # ------------------------------------------------------------- one request
    def _request_body(
        self, ep: Endpoint, model: str, inputs: list[str], plan_tpt: int | None
    ) -> tuple[str, bytes]:
        encoding = ep.encoding.current(ep.display_url, len(inputs))
        dims = self._dimensions if ep.dimensions_supported is not False else None
        tpt = plan_tpt if ep.truncate_supported is not False else None
        body = build_body(
            model=model,
            inputs=inputs,
            encoding=encoding,
            embed_dtype=self._embed_dtype,
            dimensions=dims,
            truncate_prompt_tokens=tpt,
        )
        return encoding, body

    def _transport_error(self, ep: Endpoint, exc: httpx.TransportError) -> APIConnectionError:
        """Translate an httpx failure (and mark the endpoint down when it did not connect)."""
        url = ep.display_url
        if isinstance(exc, httpx.ConnectError):
            tls = certificate_error(exc, url)
            if tls is not None:
                return tls
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            self._pool.mark_down(ep)
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"Request to {url} timed out ({type(exc).__name__}). The server may be "
                "overloaded: raise timeout=Timeout(total=...), or lower batch_size.",
                url=url,
            )
        return APIConnectionError(
            f"Could not connect to {url} ({type(exc).__name__}). Is the server up and is "
            "base_url right? Try `curl " + redact_url(ep.root_url) + "/health`.",
            url=url,
        )

    def _check_retryable(
        self, ep: Endpoint, status: int, content: bytes, headers: Mapping[str, str]
    ) -> None:
        """Raise RetryableStatus for 408/409/429/5xx; otherwise the endpoint is alive."""
        if is_retryable_status(status):
            err = error_from_response(
                status,
                parse_error_body(content),
                url=ep.display_url,
                request_id=headers.get("x-request-id"),
            )
            raise RetryableStatus(err, parse_retry_after(headers))
        self._pool.mark_up(ep)

    def _final_connection_error(self, exc: APIConnectionError) -> APIConnectionError:
        if len(self._pool) > 1 and self._pool.all_down():
            urls = ", ".join(self.base_urls)
            return NoHealthyEndpointError(
                f"None of the configured servers could be reached ({urls}). Check that they "
                "are running; the client retries each one after a short cool-down.",
                url=exc.url,
            )
        return exc

    def _handle_embed_response(
        self,
        ep: Endpoint,
        encoding: str,
        response: Reply,
        n_inputs: int,
        model: str,
    ) -> Decoded:
        """Decode a 200 answer or raise: Renegotiate, RetryableStatus or the final error."""
        status = response.status
        url = ep.display_url
        if status == 200:
            headers = response.headers
            return decode_response(
                content=response.content,
                content_type=headers.get("content-type", ""),
                metadata_header=headers.get("metadata"),
                n_inputs=n_inputs,
                url=url,
                embed_dtype=self._embed_dtype,
            )
        body = parse_error_body(response.content)
        request_id = response.headers.get("x-request-id")
        if status in C.PROXY_REFUSAL_STATUSES:
            if ep.encoding.set_aside(encoding, n_inputs):
                raise Renegotiate  # sent before an earlier refusal moved this endpoint on
            if ep.encoding.suspended:
                # Refused the same way in the next encoding too: not the proxy's doing.
                ep.encoding.restore()
            elif ep.encoding.blocked(encoding, n_inputs, url):
                logger.warning(
                    "%s answered %s to encoding_format=%s for %d inputs (a proxy that does "
                    "not pass it?); asking in %s instead",
                    url,
                    status,
                    encoding,
                    n_inputs,
                    ep.encoding.current(url, n_inputs),
                )
                self.stats.add(proxy_refusals=1)
                raise Renegotiate
        if rejects_encoding(status, body, encoding):
            logger.info("%s does not support encoding_format=%s; falling back", url, encoding)
            ep.encoding.reject(encoding)
            ep.encoding.current(url)  # raises EncodingNotSupportedError when none is left
            raise Renegotiate
        if (
            self._dimensions is not None
            and ep.dimensions_supported is not False
            and is_dimensions_refused(status, body)
            and self._client_side_dimensions
        ):
            logger.info("%s refused dimensions=%s; truncating client-side", url, self._dimensions)
            ep.dimensions_supported = False
            raise Renegotiate
        if status in (400, 422) and _mentions_truncation(body):
            ep.truncate_supported = False
            raise Renegotiate
        error = error_from_response(
            status,
            body,
            url=url,
            request_id=request_id,
            model=model,
            max_model_len=self._max_model_len,
            input_index=None,
        )
        if is_retryable_status(status):
            raise RetryableStatus(error, parse_retry_after(response.headers))
        raise error

    def _model_not_found(
        self, err: ModelNotFoundError, available: list[str] | None
    ) -> ModelNotFoundError:
        new = error_from_response(
            err.status_code,
            err.body,
            url=err.url or "",
            request_id=err.request_id,
            model=self._model,
            available=available,
        )
        return new if isinstance(new, ModelNotFoundError) else err

    def _batch_done(
        self, ep: Endpoint, asked: str, answered: str, prompt_tokens: int, out: Output
    ) -> None:
        """The one place a batch's success is recorded: endpoint up, encoding, output."""
        url = ep.display_url
        self._pool.mark_up(ep)
        if ep.encoding.suspended:
            ep.encoding.confirm()
        if answered != asked:
            # The server ignored encoding_format: never ask it for that one again.
            logger.debug("%s ignored encoding_format=%s, answered %s", url, asked, answered)
            ep.encoding.reject(asked)
        self.stats.encodings[url] = answered
        out.done(prompt_tokens, url)

    # ------------------------------------------------------------- steps (the request logic)
    def _send_steps(
        self,
        acquire: Callable[[], Endpoint | None],
        release: Callable[[Endpoint], None] | None,
        request_for: Callable[[Endpoint], tuple[Request, Ctx]],
    ) -> Steps[tuple[Endpoint, Ctx, Reply]]:
        """One request with failover: when an endpoint cannot be reached, the next healthy
        one is tried at once (the failed one cools down); the last failure is raised as
        :class:`~vllm_embed.APIConnectionError` / :class:`~vllm_embed.APITimeoutError`."""
        tried = 0
        while True:
            ep = acquire()
            while ep is None:  # every endpoint is at max_in_flight_per_endpoint
                yield WaitForSlot()
                ep = acquire()
            try:
                request, context = request_for(ep)
                try:
                    reply = yield Send(ep, request)
                except httpx.TransportError as exc:
                    err = self._transport_error(ep, exc)
                    if isinstance(exc, httpx.TimeoutException) and not isinstance(
                        exc, httpx.ConnectTimeout
                    ):
                        self._pool.timed_out(ep)  # repeated: a hung replica is taken out
                    tried += 1
                    if tried < len(self._pool) and not self._pool.all_down():
                        if self._telemetry is not None:
                            self._telemetry.failover(ep, self._model)
                        continue  # another endpoint is healthy: try it now
                    raise err from exc
            finally:
                if release is not None:
                    release(ep)
            return ep, context, reply

    def _retried(self, attempt: Callable[[], Steps[T]]) -> Steps[T]:
        """``attempt`` under the retry policy; the final error is the one users see."""
        try:
            return (yield from retrying(attempt, self._retry, on_retry=self._on_retry))
        except RetryableStatus as exc:
            raise exc.error from None
        except APIConnectionError as exc:
            final = self._final_connection_error(exc)
            if final is exc:
                raise
            raise final from exc

    def _call_steps(
        self, method: str, path: str, *, root: bool = False, body: bytes | None = None
    ) -> Steps[tuple[Endpoint, Reply]]:
        """A discovery / tokenize request on the first healthy endpoint, with failover and
        retries on connection errors and retryable statuses. Other statuses are returned."""

        def request_for(ep: Endpoint) -> tuple[Request, None]:
            return Request(method, (ep.root_url if root else ep.base_url) + path, body), None

        def attempt() -> Steps[tuple[Endpoint, Reply]]:
            ep, _, reply = yield from self._send_steps(self._pool.first, None, request_for)
            self._check_retryable(ep, reply.status, reply.content, reply.headers)
            return ep, reply

        return (yield from self._retried(attempt))

    def _batch_steps(
        self, model: str, inputs: list[str], tpt: int | None, out: Output, start: int
    ) -> Steps[None]:
        """One batch into ``out[start:...]``, with failover, renegotiation and retries."""
        n = len(inputs)

        def request_for(ep: Endpoint) -> tuple[Request, tuple[str, _Placement | None]]:
            encoding, body = self._request_body(ep, model, inputs, tpt)
            self.stats.add(requests=1)
            place = (
                _Placement(out, start, n, ep.display_url, unframed=self._embed_dtype == "float32")
                if encoding in C.BINARY_ENCODINGS
                else None
            )
            return Request("POST", ep.embeddings_url, body, place), (encoding, place)

        hedge = self._hedge if n <= C.HEDGE_MAX_INPUTS and out.n == n else None

        def attempt() -> Steps[None]:
            for _ in range(_MAX_RENEGOTIATIONS):
                if hedge is not None:  # a small, whole call: a duplicate when it is late
                    sent = hedged_send_steps(
                        self._pool, hedge, self.stats, request_for, self._transport_error
                    )
                else:
                    sent = self._send_steps(self._pool.acquire, self._pool.release, request_for)
                ep, (encoding, place), reply = yield from sent
                if reply.placed:  # the transport read the vectors straight into `out`
                    assert place is not None and place.layout is not None
                    answered = "bytes" if place.framed else "bytes_only"
                    self._batch_done(ep, encoding, answered, place.layout.prompt_tokens, out)
                    if self._telemetry is not None:
                        self._telemetry.batch_done(ep, model, n, place.layout.prompt_tokens)
                    return
                try:
                    decoded = self._handle_embed_response(ep, encoding, reply, n, model)
                except Renegotiate:
                    continue
                out.put(start, start + n, decoded.vectors, ep.display_url)
                self._batch_done(ep, encoding, decoded.encoding, decoded.prompt_tokens, out)
                if self._telemetry is not None:
                    self._telemetry.batch_done(ep, model, n, decoded.prompt_tokens)
                return
            raise RuntimeError("encoding negotiation did not settle")  # pragma: no cover

        try:
            yield from self._retried(attempt)
        except ContextLengthError as err:
            if err.input_index is None and n == 1:
                err.input_index = start
            raise

    def _post_steps(
        self, request_for: Callable[[Endpoint], tuple[str, bytes]]
    ) -> Steps[tuple[Endpoint, Reply]]:
        """POST ``request_for(endpoint) -> (url, body)`` to the least busy healthy endpoint,
        with failover and retries; statuses that are not retried are returned."""

        def make(ep: Endpoint) -> tuple[Request, None]:
            url, body = request_for(ep)
            self.stats.add(requests=1)
            return Request("POST", url, body), None

        def attempt() -> Steps[tuple[Endpoint, Reply]]:
            ep, _, reply = yield from self._send_steps(self._pool.acquire, self._pool.release, make)
            self._check_retryable(ep, reply.status, reply.content, reply.headers)
            return ep, reply

        return (yield from self._retried(attempt))

    def _rerank_steps(
        self, model: str, query: str, documents: Sequence[str]
    ) -> Steps[npt.NDArray[np.float32]]:
        """One batch of a rerank: every document's score (see :mod:`vllm_embed._rerank`)."""
        return (
            yield from rerank_steps(self._post_steps, self._rerank_routes, model, query, documents)
        )

    def _score_steps(
        self, model: str, text_1: str | Sequence[str], text_2: Sequence[str]
    ) -> Steps[npt.NDArray[np.float32]]:
        """One batch of ``/score``: the pairs' scores in input order."""
        return (yield from score_steps(self._post_steps, model, text_1, text_2))

    def _multivector_plan(self, inputs: list[str], max_model_len: int | None) -> EmbedPlan:
        """The embed plan, in batches of at most ``MAX_BATCH`` texts (big answers)."""
        plan = self._plan(inputs, max_model_len)
        size = min(self._batch_size, MAX_BATCH)
        batches = plan_batches(inputs, size, self._max_tokens, token_cap=plan.limit)
        return EmbedPlan(inputs, batches, plan.truncate_prompt_tokens, plan.suspects, plan.limit)

    def _multivector_steps(
        self, model: str, inputs: Sequence[str], tpt: int | None
    ) -> Steps[list[npt.NDArray[np.float32]]]:
        """One multi-vector batch: one ``(tokens, dim)`` array per input, in order."""
        rows, tokens = yield from multivector_steps(
            self._post_steps, self._multivector, model, inputs, tpt, self._embed_dtype
        )
        self.stats.add(inputs=len(rows), prompt_tokens=tokens)
        return rows

    def _chat_steps(
        self, model: str, messages: list[dict[str, Any]]
    ) -> Steps[npt.NDArray[np.float32]]:
        """One conversation's vector (``messages`` on ``/v1/embeddings``)."""
        vector = yield from chat_steps(self._post_steps, model, messages, self._embed_dtype)
        self.stats.add(inputs=1)
        return vector

    def _chat_result(
        self, rows: list[npt.NDArray[np.float32]], url: str
    ) -> npt.NDArray[np.float32]:
        """The conversations' vectors as one array (client-side dimensions / normalise)."""
        widths = {int(r.shape[0]) for r in rows}
        if len(widths) != 1:
            raise VectorWidthError(f"{url} returned vectors of widths {sorted(widths)}.", url=url)
        return self._postprocess(np.stack(rows).astype(np.float32, copy=False), url)

    def _messages_space(self, model: str) -> Space:
        """The cache space of conversations: the raw texts' settings, role ``messages``."""
        return dataclasses.replace(self._cache_space("raw", model, None), role="messages")

    def _score_spans(self, n: int) -> list[tuple[int, int]]:
        """Batches of a rerank / score over ``n`` documents (``batch_size`` each)."""
        size = self._batch_size
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def _models_steps(self) -> Steps[list[ModelInfo]]:
        """``GET /v1/models``, parsed and remembered."""
        ep, reply = yield from self._call_steps("GET", "/models")
        if reply.status != 200:
            raise error_from_response(
                reply.status,
                parse_error_body(reply.content),
                url=ep.display_url,
                request_id=reply.headers.get("x-request-id"),
            )
        try:
            doc = json.loads(reply.content)
        except ValueError:
            doc = None
        models = self._parse_models(doc, ep.display_url)
        self._models = models
        return models

    def _version_steps(self) -> Steps[str | None]:
        """``GET /version`` (vLLM): the version, or None when there is no such route."""
        _, reply = yield from self._call_steps("GET", "/version", root=True)
        if reply.status != 200:
            return None
        try:
            doc = json.loads(reply.content)
        except ValueError:
            return None
        version = doc.get("version") if isinstance(doc, dict) else None
        return str(version) if version is not None else None

    def _health_steps(self) -> Steps[bool]:
        """``GET /health`` on every endpoint (no retries); True when one answers 200."""
        ok = False
        for ep in self._pool.endpoints:
            try:
                reply = yield Send(ep, Request("GET", ep.root_url + "/health"))
            except httpx.TransportError:
                self._pool.mark_down(ep)
                continue
            if reply.status == 200:
                self._pool.mark_up(ep)
                ok = True
        return ok

    def _count_tokens_steps(self, model: str, text: str) -> Steps[int | None]:
        """Exact token count from vLLM's ``POST /tokenize``; None if the server has none."""
        if self._pool.first().tokenize_supported is False:
            return None
        body = self._tokenize_body(model, text)
        ep, reply = yield from self._call_steps("POST", "/tokenize", root=True, body=body)
        return self._tokenize_count(ep, reply.status, reply.content)

    # ------------------------------------------------------------- assembly
    def _prepare(
        self, items: list[str], kind: Kind, model: str, max_model_len: int | None
    ) -> EmbedPlan:
        """What one embed call sends: instructions applied (``kind``), batches planned.

        Together with the twins' ``_embed_plan`` (which runs a plan and returns the
        result) this is the seam for anything that wants to send fewer texts, e.g. a cache:
        plan, look ``plan.inputs`` up, run a plan of the misses, merge.
        """
        return self._plan(self._apply_kind(items, kind, model), max_model_len)

    def _finish(
        self, plan: EmbedPlan, out: Output, truncated: list[int], model: str
    ) -> EmbedResult:
        """The result of a plan whose batches all landed in ``out``."""
        raw = out.result()
        if self._wire_width is None and raw.shape[0]:
            self._wire_width = int(raw.shape[1])
        vectors = self._postprocess(raw, out.url)
        return self._result(
            vectors, truncated, out.prompt_tokens, model, exact=self._truncation_exact(plan)
        )

    def _output(self, n: int) -> Output:
        return Output(n, self._wire_width)

    def _postprocess(self, out: npt.NDArray[np.float32], url: str) -> npt.NDArray[np.float32]:
        """Client-side Matryoshka truncation and L2 normalisation (in place when possible)."""
        want = self._dimensions
        if want is not None and out.shape[1] != want:
            if out.shape[1] < want:
                raise DimensionsNotSupportedError(
                    f"dimensions={want} asked, but the model on {url} produces only "
                    f"{out.shape[1]}-dimensional vectors. Use dimensions <= {out.shape[1]}.",
                    url=url,
                    status_code=200,
                )
            if not self._client_side_dimensions:
                raise DimensionsNotSupportedError(
                    f"The server at {url} ignored dimensions={want} and returned "
                    f"{out.shape[1]} dimensions. Pass client_side_dimensions=True to truncate "
                    "and re-normalise on the client, or drop dimensions=...",
                    url=url,
                    status_code=200,
                )
            out = np.ascontiguousarray(out[:, :want])
            _l2_normalize(out)
        elif self._normalize:
            _l2_normalize(out)
        return out

    def _wants_token_counts(self, plan: EmbedPlan) -> bool:
        """True when the plan's long inputs should be counted with ``/tokenize``."""
        return (
            bool(plan.suspects)
            and plan.limit is not None
            and self._count_truncated == "exact"
            and self._pool.first().tokenize_supported is not False
        )

    def _judge_truncation(self, plan: EmbedPlan, counts: Sequence[int | None]) -> list[int]:
        """Indices of the plan's long inputs that exceed the limit.

        ``counts`` holds the exact token count of each suspect, or None where unknown (the
        length estimate is used then, unless ``count_truncated="off"``). With
        ``truncate="error"`` an exact count over the limit raises ContextLengthError.
        """
        if plan.limit is None or self._count_truncated == "off":
            return []
        limit = plan.limit
        truncated: list[int] = []
        for index, count in zip(plan.suspects, counts, strict=True):
            text = plan.inputs[index]
            too_long = count > limit if count is not None else self._estimate_too_long(text, limit)
            if not too_long:
                continue
            if self._truncate == "error" and count is not None:
                raise self._context_error(index, count, limit, self._pool.first().display_url)
            truncated.append(index)
        return truncated if self._truncate == "end" else []

    def _truncation_exact(self, plan: EmbedPlan) -> bool:
        """False when truncation was estimated or not counted (no /tokenize, or by choice)."""
        if not plan.suspects:
            return True
        return self._count_truncated == "exact" and (
            self._pool.first().tokenize_supported is not False
        )

    def _result(
        self,
        vectors: npt.NDArray[np.float32],
        truncated: list[int],
        prompt_tokens: int,
        model: str,
        *,
        exact: bool = True,
    ) -> EmbedResult:
        if vectors.shape[0] and self._dimension is None:
            self._dimension = int(vectors.shape[1])
        self.stats.add(
            inputs=int(vectors.shape[0]), truncated=len(truncated), prompt_tokens=prompt_tokens
        )
        return EmbedResult(
            vectors=vectors,
            truncated=len(truncated),
            truncated_indices=truncated,
            prompt_tokens=prompt_tokens,
            model=model,
            truncation_exact=exact,
        )

    def _empty(self, dim: int) -> EmbedResult:
        return EmbedResult(np.empty((0, dim), dtype=np.float32), 0, [], 0, self._model or "")

    @staticmethod
    def _tokenize_body(model: str, text: str) -> bytes:
        return json.dumps(
            {"model": model, "prompt": text, "add_special_tokens": True}, ensure_ascii=False
        ).encode("utf-8")

    @staticmethod
    def _tokenize_count(ep: Endpoint, status: int, content: bytes) -> int | None:
        """The token count in a ``/tokenize`` answer; None (and remembered) if unusable."""
        if status == 200:
            try:
                doc = json.loads(content)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                count = doc.get("count")
                if count is None and isinstance(doc.get("tokens"), list):
                    count = len(doc["tokens"])
                if isinstance(count, int):
                    ep.tokenize_supported = True
                    return count
        ep.tokenize_supported = False
        return None

    def _on_retry(self, exc: BaseException, wait: float) -> None:
        self.stats.add(retries=1)
        what = type(exc.error).__name__ if isinstance(exc, RetryableStatus) else type(exc).__name__
        url = getattr(getattr(exc, "error", exc), "url", None)
        if self._telemetry is not None:
            self._telemetry.retry(url, self._model)
        logger.info("retrying after %s from %s in %.2fs", what, url, wait)


class Output:
    """The result array of one embed call, allocated when the first batch tells the
    dimension. Batches write their rows in place (thread-safe)."""

    def __init__(self, n: int, width: int | None = None) -> None:
        self.n = n
        #: The width the client's server answered with before (None: not known yet).
        self.width = width
        self.array: npt.NDArray[np.float32] | None = None
        self.prompt_tokens = 0
        self.url = ""
        self._lock = threading.Lock()

    def rows(self, start: int, end: int, dim: int, url: str) -> npt.NDArray[np.float32]:
        """The rows ``[start, end)`` of the result (allocating it on first use)."""
        array = self.array
        if array is None:
            if self.width is not None and dim != self.width:
                raise VectorWidthError(
                    f"{url} returned {dim}-wide vectors where this client's earlier answers "
                    f"were {self.width} wide. A gateway that ignores encoding_format (and "
                    "re-reads the vectors) or a model swapped behind the URL does this; "
                    "nothing was cached or written. Check what sits between the client and "
                    "vLLM, or create a new client if the model changed on purpose.",
                    url=url,
                )
            with self._lock:
                if self.array is None:
                    self.array = np.empty((self.n, dim), dtype=np.float32)
                array = self.array
        if array.shape[1] != dim:
            raise VectorWidthError(
                f"{url} returned {dim}-dimensional vectors where earlier batches had "
                f"{array.shape[1]}. All base URLs must serve the same model.",
                url=url,
            )
        return array[start:end]

    def put(self, start: int, end: int, vectors: npt.NDArray[Any], url: str) -> None:
        """Copy decoded vectors into place (casting float16 / big-endian to float32)."""
        self.rows(start, end, int(vectors.shape[1]), url)[:] = vectors

    def done(self, prompt_tokens: int, url: str) -> None:
        """Record one finished batch."""
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.url = url

    def result(self) -> npt.NDArray[np.float32]:
        """The filled array."""
        assert self.array is not None, "no batch completed"
        return self.array


class _Placement:
    """``Request.place`` for a binary batch: once the headers are in, the rows of ``out``
    to read the body into (when it is little-endian float32 in vLLM's usual layout, see
    :func:`vllm_embed._wire.direct_layout`, or a ``bytes_only`` body of float32 rows when
    ``unframed``: :func:`vllm_embed._wire.unframed_layout`)."""

    __slots__ = ("framed", "layout", "n", "out", "start", "unframed", "url")

    def __init__(self, out: Output, start: int, n: int, url: str, *, unframed: bool) -> None:
        self.out, self.start, self.n, self.url = out, start, n, url
        self.unframed = unframed
        self.layout: Layout | None = None
        self.framed = True

    def __call__(self, headers: Mapping[str, str]) -> memoryview | None:
        content_type, metadata = headers.get("content-type", ""), headers.get("metadata")
        layout = direct_layout(content_type, metadata, self.n)
        if layout is None and self.unframed:
            layout = unframed_layout(content_type, metadata, headers.get("content-length"), self.n)
            self.framed = False
        if layout is None:
            return None
        self.layout = layout
        rows = self.out.rows(self.start, self.start + self.n, layout.dim, self.url)
        return memoryview(rows.data).cast("B")


def _mentions_truncation(body: Any) -> bool:
    text = body if isinstance(body, str) else json.dumps(body)
    return "truncate_prompt_tokens" in text or "truncation_side" in text


def _l2_normalize(out: npt.NDArray[np.float32]) -> None:
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    out /= norms
