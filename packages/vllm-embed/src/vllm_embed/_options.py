"""The client's settings: the constructor's keywords, documented and validated once.

:class:`ClientOptions` is the root of the client's layers (settings here, then
:mod:`vllm_embed._assembly` for planning and results, :mod:`vllm_embed._steps` for the
request logic, :class:`~vllm_embed._base.BaseEmbeddingClient` on top). Its ``__init__`` is
the one list of keywords: the twins inherit it and set up their own I/O in ``_init_io``,
so a new setting is one keyword here (and its line in the docstring).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal

import httpx

from vllm_embed import _constants as C
from vllm_embed._cache import ClientCache, EmbeddingCache
from vllm_embed._endpoints import EndpointPool
from vllm_embed._errors import (
    ConfigValueError,
)
from vllm_embed._hedge import HedgeDelay, hedge_setting
from vllm_embed._instructions import Instructions, resolve_instructions
from vllm_embed._multivector import (
    MULTIVECTOR_ENCODINGS,
    MultiVectorState,
)
from vllm_embed._rerank import RerankRoutes
from vllm_embed._settings import client_kwargs_from_env, positive_int_argument
from vllm_embed._telemetry import Registry, Telemetry
from vllm_embed._tls import Verify, check_verify
from vllm_embed._types import ClientStats, ModelInfo, RetryPolicy, Secret, Timeout
from vllm_embed._wire import (
    preference_for,
)

if TYPE_CHECKING:
    from vllm_embed._config import EmbedConfig

__all__ = ["ClientOptions", "CountTruncated", "EmbedDType", "Encoding", "HttpT", "Kind", "Truncate"]

logger = logging.getLogger("vllm_embed")


logger = logging.getLogger("vllm_embed")

Kind = Literal["raw", "query", "document"]
Encoding = Literal["auto", "bytes_only", "bytes", "base64", "float"]
EmbedDType = Literal["float32", "float16"]
Truncate = Literal["end", "error"]
CountTruncated = Literal["exact", "estimate", "off"]

#: from_config overrides passed to the client as they are (not config-file settings).
_DIRECT_OVERRIDES = frozenset({"retry", "http_client", "count_truncated", "cache", "verify"})

#: The twin's own httpx client type (``httpx.Client`` or ``httpx.AsyncClient``).
if TYPE_CHECKING:
    # A TypeVar default (PEP 696: a bare ``BaseEmbeddingClient`` means any http client)
    # matters to type checkers only; typing_extensions is no run-time dependency.
    from typing_extensions import TypeVar

    HttpT = TypeVar("HttpT", default=Any)
else:
    from typing import TypeVar

    HttpT = TypeVar("HttpT")


def _optional_positive(name: str, value: object) -> int | None:
    return None if value is None else positive_int_argument(name, value)


class ClientOptions(Generic[HttpT]):
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
            server; keys cover the served model (re-checked with a probe vector once per
            client and settings), role, instruction, dimensions, normalisation, truncation,
            dtypes and the cache's namespace.
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
        http_client: Your own ``httpx.Client`` (``httpx.AsyncClient`` for the async twin)
            for proxies, TLS or mounts; the client then does not close it.
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
        http_client: HttpT | None = None,
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
            max_in_flight=_optional_positive(
                "max_in_flight_per_endpoint", max_in_flight_per_endpoint
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
        self._batch_size = positive_int_argument(
            "batch_size", C.DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        )
        self._max_tokens = _optional_positive("max_tokens_per_request", max_tokens_per_request)
        self._max_concurrency = positive_int_argument(
            "max_concurrency",
            C.DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
        )
        if embed_dtype not in ("float32", "float16"):
            raise ConfigValueError(
                f"embed_dtype must be 'float32' or 'float16', got {embed_dtype!r}"
            )
        self._embed_dtype: EmbedDType = embed_dtype
        self._dimensions = _optional_positive("dimensions", dimensions)
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
        self._http_client: HttpT | None = http_client
        #: False when the caller gave its own http_client (the client then does not close it).
        self._owns_http = http_client is None
        self._init_io()

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

    @property
    def normalize(self) -> bool:
        """True when the client L2-normalises every vector itself."""
        return self._normalize

    @property
    def cache(self) -> EmbeddingCache | None:
        """The embedding cache in use (``cache=...``), or None."""
        return self._cache.cache if self._cache is not None else None

    def _close_cache(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def _init_io(self) -> None:
        """The twin's own state (connections, locks), set up at the end of ``__init__``."""
