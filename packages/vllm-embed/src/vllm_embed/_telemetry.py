"""Optional observability: OpenTelemetry spans and Prometheus metrics.

Off by default, and then absent: the client holds ``_telemetry = None`` and every hook is
one ``is not None`` check; neither ``opentelemetry`` nor ``prometheus_client`` is imported.
Turned on per client (``tracing=True``, ``metrics=True`` or a ``CollectorRegistry``; or
``VLLM_EMBED_TRACING=1`` / ``VLLM_EMBED_METRICS=1``), :class:`Telemetry` records:

Spans (``opentelemetry-api`` only; the application configures the SDK and exporter):

- one per embed call, named ``embeddings {model}`` (GenAI semantic conventions:
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.embeddings.dimension.count``, ``gen_ai.request.encoding_formats``,
  ``server.address`` / ``server.port`` of the first endpoint, ``error.type`` on failure);
- one per HTTP request as its child, named after the method (``POST``; HTTP client
  conventions: ``http.request.method``, ``url.full`` without credentials or query,
  ``server.address``, ``server.port``, ``http.response.status_code``, ``error.type``).

Metrics (``prometheus-client``), labelled by endpoint (scheme, host, port and path only:
never credentials or a query string) and model, so their number stays that of the
configured servers: ``vllm_embed_requests_total`` (+ ``route``: embeddings, models,
tokenize, health, version; ``status``: the HTTP status or the error class),
``vllm_embed_request_duration_seconds`` (histogram, + ``route``),
``vllm_embed_input_tokens_total``, ``vllm_embed_vectors_total``,
``vllm_embed_retries_total``, ``vllm_embed_failovers_total`` (the endpoint failed away
from), ``vllm_embed_cache_hits_total`` / ``vllm_embed_cache_misses_total`` (model only) and
``vllm_embed_embed_duration_seconds`` (one embed call; model and ``kind``). Clients sharing
a registry share the metric objects.

Attribute names come from the installed ``opentelemetry-semantic-conventions`` when it has
them (:func:`_semconv`), else from the literals below (the names of semconv 1.37+).
"""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from vllm_embed._errors import ConfigValueError, MissingDependencyError
from vllm_embed._version import __version__

if TYPE_CHECKING:
    from vllm_embed._endpoints import Endpoint
    from vllm_embed._transports import Reply, Request
    from vllm_embed._types import EmbedResult

__all__ = ["Registry", "Telemetry", "endpoint_label", "install_hint"]

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry as Registry
else:  # the constructors' annotation, resolvable at run time without prometheus_client
    Registry = Any

T = TypeVar("T")
K = TypeVar("K", bound=str)

OTEL_HINT = "tracing=True needs opentelemetry-api. Run: pip install 'vllm-embed[otel]'"
METRICS_HINT = "metrics=True needs prometheus-client. Run: pip install 'vllm-embed[metrics]'"

#: The routes the client calls (the last path segment); anything else is "other".
_ROUTES = frozenset({"embeddings", "models", "tokenize", "health", "version"})
#: Request latency buckets (seconds): a cached-connection query is ~1 ms, a big batch seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0)
PROVIDER = "vllm"


def install_hint(what: str) -> str:
    """The message of the MissingDependencyError for ``"otel"`` / ``"metrics"``."""
    return OTEL_HINT if what == "otel" else METRICS_HINT


def endpoint_label(url: str) -> str:
    """``url`` as a metric label / span attribute: scheme, host, port and path only."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def _route(url: str) -> str:
    last = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    return last if last in _ROUTES else "other"


# ------------------------------------------------------------------ attribute names


class _Names:
    """Semantic-convention attribute names: the installed semconv's, else these literals."""

    operation = "gen_ai.operation.name"
    provider = "gen_ai.provider.name"
    request_model = "gen_ai.request.model"
    response_model = "gen_ai.response.model"
    input_tokens = "gen_ai.usage.input_tokens"
    encoding_formats = "gen_ai.request.encoding_formats"
    dimension_count = "gen_ai.embeddings.dimension.count"
    server_address = "server.address"
    server_port = "server.port"
    error_type = "error.type"
    http_method = "http.request.method"
    http_status = "http.response.status_code"
    url_full = "url.full"
    embeddings = "embeddings"


#: (attribute of _Names, semconv module, constant in it)
_SEMCONV = (
    ("operation", "_incubating.attributes.gen_ai_attributes", "GEN_AI_OPERATION_NAME"),
    ("provider", "_incubating.attributes.gen_ai_attributes", "GEN_AI_PROVIDER_NAME"),
    ("request_model", "_incubating.attributes.gen_ai_attributes", "GEN_AI_REQUEST_MODEL"),
    ("response_model", "_incubating.attributes.gen_ai_attributes", "GEN_AI_RESPONSE_MODEL"),
    ("input_tokens", "_incubating.attributes.gen_ai_attributes", "GEN_AI_USAGE_INPUT_TOKENS"),
    (
        "encoding_formats",
        "_incubating.attributes.gen_ai_attributes",
        "GEN_AI_REQUEST_ENCODING_FORMATS",
    ),
    (
        "dimension_count",
        "_incubating.attributes.gen_ai_attributes",
        "GEN_AI_EMBEDDINGS_DIMENSION_COUNT",
    ),
    ("server_address", "attributes.server_attributes", "SERVER_ADDRESS"),
    ("server_port", "attributes.server_attributes", "SERVER_PORT"),
    ("error_type", "attributes.error_attributes", "ERROR_TYPE"),
    ("http_method", "attributes.http_attributes", "HTTP_REQUEST_METHOD"),
    ("http_status", "attributes.http_attributes", "HTTP_RESPONSE_STATUS_CODE"),
    ("url_full", "attributes.url_attributes", "URL_FULL"),
)

_names_lock = threading.Lock()
_names_loaded = False


def _semconv() -> type[_Names]:
    """:class:`_Names`, updated once from the installed semconv where it defines a name."""
    global _names_loaded
    with _names_lock:
        if not _names_loaded:
            import importlib

            for attr, module, constant in _SEMCONV:
                try:
                    mod = importlib.import_module(f"opentelemetry.semconv.{module}")
                except ImportError:
                    continue
                value = getattr(mod, constant, None)
                if isinstance(value, str):
                    setattr(_Names, attr, value)
            _names_loaded = True
    return _Names


# ------------------------------------------------------------------ metrics


class _Metrics:
    """The metric objects of one registry (created once per registry, shared)."""

    _by_registry: ClassVar[weakref.WeakKeyDictionary[Any, _Metrics]] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        ep_model = ("endpoint", "model")
        self.requests = Counter(
            "vllm_embed_requests",
            "HTTP requests sent, by endpoint, model, route and status (HTTP status or error).",
            (*ep_model, "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "vllm_embed_request_duration_seconds",
            "HTTP request latency (send to full answer), by endpoint, model and route.",
            (*ep_model, "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "vllm_embed_input_tokens",
            "Input tokens the server reported (usage.prompt_tokens).",
            ep_model,
            registry=registry,
        )
        self.vectors = Counter(
            "vllm_embed_vectors", "Vectors received from the server.", ep_model, registry=registry
        )
        self.retries = Counter(
            "vllm_embed_retries",
            "Requests retried after a retryable failure.",
            ep_model,
            registry=registry,
        )
        self.failovers = Counter(
            "vllm_embed_failovers",
            "Requests moved to another endpoint because this one could not be reached.",
            ep_model,
            registry=registry,
        )
        self.cache_hits = Counter(
            "vllm_embed_cache_hits", "Inputs answered by the embedding cache.", ("model",),
            registry=registry,
        )  # fmt: skip
        self.cache_misses = Counter(
            "vllm_embed_cache_misses", "Unique texts the cache sent to the server.", ("model",),
            registry=registry,
        )  # fmt: skip
        self.calls = Histogram(
            "vllm_embed_embed_duration_seconds",
            "Embed calls (embed, embed_query, embed_documents, ...): duration by model and kind.",
            ("model", "kind"),
            buckets=CALL_BUCKETS,
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: Any) -> _Metrics:
        with cls._lock:
            metrics = cls._by_registry.get(registry)
            if metrics is None:
                metrics = cls(registry)
                cls._by_registry[registry] = metrics
            return metrics


def _registry(metrics: object) -> Any:
    """The CollectorRegistry for the ``metrics`` setting (True: prometheus' default)."""
    try:
        import prometheus_client
    except ImportError as exc:
        raise MissingDependencyError(METRICS_HINT) from exc
    if metrics is True:
        return prometheus_client.REGISTRY
    if isinstance(metrics, prometheus_client.CollectorRegistry):
        return metrics
    raise ConfigValueError(
        f"metrics must be True, False or a prometheus_client.CollectorRegistry, got {metrics!r}"
    )


def _tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise MissingDependencyError(OTEL_HINT) from exc
    return trace.get_tracer("vllm_embed", __version__)


# ------------------------------------------------------------------ the client's hooks


class Telemetry:
    """What one client records; built by :meth:`create` only when something is on."""

    __slots__ = ("_ep_cache", "metrics", "names", "tracer")

    def __init__(self, tracer: Any, metrics: _Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics
        self.names = _semconv() if tracer is not None else _Names
        #: endpoint base URL -> (label, server address, port)
        self._ep_cache: dict[str, tuple[str, str, int]] = {}

    @classmethod
    def create(cls, tracing: bool, metrics: object) -> Telemetry | None:
        """None when both are off (the client then pays nothing)."""
        if not tracing and (metrics is None or metrics is False):
            return None
        tracer = _tracer() if tracing else None
        registry = _registry(metrics) if metrics is not None and metrics is not False else None
        return cls(tracer, _Metrics.for_registry(registry) if registry is not None else None)

    def _endpoint(self, url: str) -> tuple[str, str, int]:
        found = self._ep_cache.get(url)
        if found is None:
            found = (endpoint_label(url), *_server(url))
            self._ep_cache[url] = found
        return found

    # -------------------------------------------------------- threads
    def submit(self, executor: Executor, fn: Callable[[Any], T], item: Any) -> Future[T]:
        """``executor.submit(fn, item)`` in a copy of this thread's context, so a request
        span made in the worker thread is a child of the embed call's span."""
        if self.tracer is None:
            return executor.submit(fn, item)
        return executor.submit(contextvars.copy_context().run, fn, item)

    # -------------------------------------------------------- one embed call
    @contextmanager
    def _call(self, client: Any, kind: str) -> Iterator[dict[str, Any]]:
        """Span + duration of one embed call; the body puts its EmbedResult in the dict."""
        box: dict[str, Any] = {}
        started = time.perf_counter()
        span = None
        model = client._model
        if self.tracer is not None:
            names = self.names
            ep = client._pool.endpoints[0]
            _, host, port = self._endpoint(ep.base_url)
            attributes: dict[str, Any] = {
                names.operation: names.embeddings,
                names.provider: PROVIDER,
                names.server_address: host,
                names.server_port: port,
                "vllm_embed.kind": kind,
            }
            if model:
                attributes[names.request_model] = model
            span_cm = self.tracer.start_as_current_span(
                f"{names.embeddings} {model}" if model else names.embeddings,
                kind=_client_kind(),
                attributes=attributes,
                record_exception=True,
                set_status_on_exception=True,
            )
            span = span_cm.__enter__()
        try:
            yield box
        except BaseException as exc:
            if span is not None:
                span.set_attribute(self.names.error_type, _error_type(exc))
                span_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        result: EmbedResult | None = box.get("result")
        if self.metrics is not None:
            label = result.model if result is not None else (client._model or "")
            self.metrics.calls.labels(label, kind).observe(time.perf_counter() - started)
        if span is not None:
            names = self.names
            if result is not None:
                if not model:  # discovered during the call
                    span.update_name(f"{names.embeddings} {result.model}")
                    span.set_attribute(names.request_model, result.model)
                span.set_attribute(names.response_model, result.model)
                span.set_attribute(names.input_tokens, result.prompt_tokens)
                if result.vectors.ndim == 2:
                    span.set_attribute(names.dimension_count, int(result.vectors.shape[1]))
                    span.set_attribute("vllm_embed.inputs", int(result.vectors.shape[0]))
                formats = sorted(set(client.stats.encodings.values()))
                if formats:
                    span.set_attribute(names.encoding_formats, formats)
            span_cm.__exit__(None, None, None)

    def embed_call(
        self, client: Any, body: Callable[[Any, K], EmbedResult], texts: Any, kind: K
    ) -> EmbedResult:
        """``body(texts, kind)`` (the sync twin's embed_with_info) inside the call's span."""
        with self._call(client, kind) as box:
            box["result"] = result = body(texts, kind)
        return result

    async def aembed_call(
        self,
        client: Any,
        body: Callable[[Any, K], Awaitable[EmbedResult]],
        texts: Any,
        kind: K,
    ) -> EmbedResult:
        """The async twin's :meth:`embed_call`."""
        with self._call(client, kind) as box:
            box["result"] = result = await body(texts, kind)
        return result

    # -------------------------------------------------------- one HTTP request
    @contextmanager
    def _request(self, ep: Endpoint, request: Request, model: str | None) -> Iterator[list[Any]]:
        label, host, port = self._endpoint(ep.base_url)
        route = _route(request.url)
        box: list[Any] = []
        span = None
        if self.tracer is not None:
            names = self.names
            span_cm = self.tracer.start_as_current_span(
                request.method,
                kind=_client_kind(),
                attributes={
                    names.http_method: request.method,
                    names.url_full: endpoint_label(request.url),
                    names.server_address: host,
                    names.server_port: port,
                },
                record_exception=True,
                set_status_on_exception=True,
            )
            span = span_cm.__enter__()
        started = time.perf_counter()
        try:
            yield box
        except BaseException as exc:
            status = _error_type(exc)
            if self.metrics is not None:
                self._count_request(label, model, route, status, started)
            if span is not None:
                span.set_attribute(self.names.error_type, status)
                span_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        reply: Reply = box[0]
        if self.metrics is not None:
            self._count_request(label, model, route, str(reply.status), started)
        if span is not None:
            span.set_attribute(self.names.http_status, reply.status)
            if reply.status >= 400:
                from opentelemetry.trace import Status, StatusCode

                span.set_attribute(self.names.error_type, str(reply.status))
                span.set_status(Status(StatusCode.ERROR))
            span_cm.__exit__(None, None, None)

    def _count_request(
        self, label: str, model: str | None, route: str, status: str, started: float
    ) -> None:
        assert self.metrics is not None
        model = model or ""
        self.metrics.requests.labels(label, model, route, status).inc()
        self.metrics.latency.labels(label, model, route).observe(time.perf_counter() - started)

    def send(
        self, ep: Endpoint, request: Request, send: Callable[[Request], Reply], model: str | None
    ) -> Reply:
        """``send(request)`` (a transport's) inside its span, counted and timed."""
        with self._request(ep, request, model) as box:
            box.append(send(request))
        reply: Reply = box[0]
        return reply

    async def asend(
        self,
        ep: Endpoint,
        request: Request,
        send: Callable[[Request], Awaitable[Reply]],
        model: str | None,
    ) -> Reply:
        """The async twin's :meth:`send`."""
        with self._request(ep, request, model) as box:
            box.append(await send(request))
        reply: Reply = box[0]
        return reply

    # -------------------------------------------------------- counters
    def batch_done(self, ep: Endpoint, model: str, vectors: int, prompt_tokens: int) -> None:
        """One batch answered by ``ep``: its vectors and the server's token count."""
        if self.metrics is not None:
            label = self._endpoint(ep.base_url)[0]
            self.metrics.vectors.labels(label, model).inc(vectors)
            if prompt_tokens:
                self.metrics.tokens.labels(label, model).inc(prompt_tokens)

    def retry(self, url: str | None, model: str | None) -> None:
        """A retry after a failure from ``url`` (a display URL; None when unknown)."""
        if self.metrics is not None:
            label = endpoint_label(url) if url else ""
            self.metrics.retries.labels(label, model or "").inc()

    def failover(self, ep: Endpoint, model: str | None) -> None:
        """A request moved away from ``ep`` (it could not be reached)."""
        if self.metrics is not None:
            self.metrics.failovers.labels(self._endpoint(ep.base_url)[0], model or "").inc()

    def cache(self, model: str, hits: int, misses: int) -> None:
        """One cache lookup round: inputs answered, unique texts sent to the server."""
        if self.metrics is not None:
            if hits:
                self.metrics.cache_hits.labels(model).inc(hits)
            if misses:
                self.metrics.cache_misses.labels(model).inc(misses)


def _client_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT


def _error_type(exc: BaseException) -> str:
    """``error.type``: the error's class name (ours are specific: ServerError, APITimeoutError)."""
    return type(exc).__qualname__
