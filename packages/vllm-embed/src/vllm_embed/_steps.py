"""The request logic, written once as generators of steps.

A step is :class:`Send` (one HTTP request to one endpoint; the twin sends the transport's
:class:`~vllm_embed._transports.Reply` back in, or throws the network error in) or
:class:`~vllm_embed._retry.Sleep` (with several endpoints also
:class:`~vllm_embed._hedge.Hedge` and :class:`~vllm_embed._hedge.WaitForSlot`).
:mod:`vllm_embed._client` and :mod:`vllm_embed._async_client` only run those steps
(``_run``: blocking or awaiting), spread batches over threads or tasks (``_map``) and own
the connections. Here: one request with failover, retries, renegotiation, one batch,
discovery, tokenize, and the rerank / score / multi-vector / chat wrappers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._chat import chat_steps
from vllm_embed._discovery import parse_models, tokenize_body, tokenize_count
from vllm_embed._endpoints import Endpoint
from vllm_embed._errors import (
    APIConnectionError,
    APITimeoutError,
    ContextLengthError,
    ModelNotFoundError,
    NoHealthyEndpointError,
)
from vllm_embed._hedge import Hedge, WaitForSlot, hedged_send_steps
from vllm_embed._http_errors import error_from_response, is_dimensions_refused
from vllm_embed._multivector import (
    multivector_steps,
)
from vllm_embed._rerank import rerank_steps, score_steps
from vllm_embed._retry import (
    RetryableStatus,
    Sleep,
    is_retryable_status,
    parse_retry_after,
    retrying,
)
from vllm_embed._secrets import mask_url
from vllm_embed._tls import certificate_error
from vllm_embed._transports import Reply, Request
from vllm_embed._types import ModelInfo
from vllm_embed._wire import (
    Decoded,
    build_body,
    decode_response,
    parse_error_body,
    rejects_encoding,
)

if TYPE_CHECKING:
    pass

from vllm_embed._assembly import ClientAssembly, Output, Placement
from vllm_embed._options import HttpT

__all__ = ["ClientSteps", "Renegotiate", "Send", "Steps"]

logger = logging.getLogger("vllm_embed")

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


class ClientSteps(ClientAssembly[HttpT]):
    """The request logic as step generators: the client's last I/O-free layer."""

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
            "base_url right? Try `curl " + mask_url(ep.root_url) + "/health`.",
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

        def request_for(ep: Endpoint) -> tuple[Request, tuple[str, Placement | None]]:
            encoding, body = self._request_body(ep, model, inputs, tpt)
            self.stats.add(requests=1)
            place = (
                Placement(out, start, n, ep.display_url, unframed=self._embed_dtype == "float32")
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
        models = parse_models(doc, ep.display_url)
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
        body = tokenize_body(model, text)
        ep, reply = yield from self._call_steps("POST", "/tokenize", root=True, body=body)
        return tokenize_count(ep, reply.status, reply.content)

    def _on_retry(self, exc: BaseException, wait: float) -> None:
        self.stats.add(retries=1)
        what = type(exc.error).__name__ if isinstance(exc, RetryableStatus) else type(exc).__name__
        url = getattr(getattr(exc, "error", exc), "url", None)
        if self._telemetry is not None:
            self._telemetry.retry(url, self._model)
        logger.info("retrying after %s from %s in %.2fs", what, url, wait)


def _mentions_truncation(body: Any) -> bool:
    text = body if isinstance(body, str) else json.dumps(body)
    return "truncate_prompt_tokens" in text or "truncation_side" in text
