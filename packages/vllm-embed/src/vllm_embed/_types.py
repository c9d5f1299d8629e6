"""Small value types: Secret, Timeout, RetryPolicy, ModelInfo, EmbedResult, ClientStats."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._errors import ConfigValueError

__all__ = ["ClientStats", "EmbedResult", "ModelInfo", "RetryPolicy", "Secret", "Timeout"]


class Secret:
    """A credential that never shows itself: ``repr``/``str`` give ``'***'``.

    Call :meth:`get` for the value when it is really needed (building a header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.get()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a string")
        self._value = value

    def get(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable (keeps keys out of pickles and caches)")


@dataclass(frozen=True)
class Timeout:
    """Request timeouts in seconds.

    ``total`` bounds reading, writing and waiting for a pooled connection of one request;
    ``connect`` bounds opening a connection. (Retries have their own bound:
    :attr:`RetryPolicy.total_timeout`.)
    """

    total: float | None = C.DEFAULT_TIMEOUT_TOTAL
    connect: float | None = C.DEFAULT_TIMEOUT_CONNECT

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """Accept a Timeout, a number of seconds (total) or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigValueError(
                f"timeout must be a positive number of seconds or a Timeout, got {value!r}"
            )
        return cls(total=float(value), connect=min(float(value), C.DEFAULT_TIMEOUT_CONNECT))


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Connection errors, timeouts, 408, 409, 429 and 5xx are retried with exponential
    backoff (``initial_delay * backoff_factor ** (attempt - 1)``, capped at ``max_delay``,
    spread by ``±jitter`` as a fraction). A ``Retry-After`` header replaces the computed
    delay. Retrying stops after ``max_attempts`` attempts or when the next wait would end
    later than ``total_timeout`` seconds after the first attempt. ``max_attempts=1``
    disables retries.
    """

    max_attempts: int = C.DEFAULT_MAX_ATTEMPTS
    initial_delay: float = C.DEFAULT_INITIAL_DELAY
    max_delay: float = C.DEFAULT_MAX_DELAY
    backoff_factor: float = C.DEFAULT_BACKOFF_FACTOR
    jitter: float = C.DEFAULT_JITTER
    total_timeout: float = C.DEFAULT_RETRY_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigValueError("RetryPolicy.max_attempts must be >= 1 (1 = no retries)")
        if min(self.initial_delay, self.max_delay, self.backoff_factor, self.jitter) < 0:
            raise ConfigValueError("RetryPolicy delays, backoff_factor and jitter must be >= 0")
        if self.total_timeout <= 0:
            raise ConfigValueError("RetryPolicy.total_timeout must be > 0 seconds")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)


@dataclass(frozen=True)
class ModelInfo:
    """One entry of ``/v1/models``. ``max_model_len`` is vLLM's context length (or None)."""

    id: str
    max_model_len: int | None = None
    owned_by: str | None = None


@dataclass(frozen=True)
class EmbedResult:
    """Vectors plus what happened making them.

    ``truncated`` counts inputs the server cut to fit the context (``truncate="end"``),
    ``truncated_indices`` lists their positions; ``prompt_tokens`` is the server's usage
    count (batches answered in ``bytes_only``, which carries no usage, count 0); ``model``
    the model that produced the vectors. ``truncation_exact`` is False when some input was
    long enough to be cut and the count is not exact: an estimate (the server has no
    ``/tokenize`` route, or ``count_truncated="estimate"``) or not counted at all
    (``count_truncated="off"``: ``truncated`` is then 0).
    """

    vectors: npt.NDArray[np.float32]
    truncated: int
    truncated_indices: list[int]
    prompt_tokens: int
    model: str
    truncation_exact: bool = True


@dataclass
class ClientStats:
    """Cumulative counters of one client (thread-safe to update through :meth:`add`).

    ``encodings`` maps each endpoint URL to the transfer encoding it was last served with.
    With ``cache=...``: ``cache_hits`` inputs answered by the cache, ``cache_misses`` unique
    texts sent to the server instead, ``cache_bytes_read`` / ``cache_bytes_written``, and
    ``cache_errors`` (cache failures the calls went on without). ``proxy_refusals``: binary
    answers a proxy refused to carry (each renegotiated at once, not retried).
    Several base URLs: ``hedges`` duplicate requests sent (``hedge=...``), ``hedges_won``
    of them answered first, ``endpoints_ejected`` times an endpoint was taken out of
    rotation (refused a connection, or timed out repeatedly), ``half_open_probes`` trial
    requests sent to an endpoint after its cool-down to bring it back.
    """

    requests: int = 0
    inputs: int = 0
    truncated: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bytes_read: int = 0
    cache_bytes_written: int = 0
    cache_errors: int = 0
    proxy_refusals: int = 0
    hedges: int = 0
    hedges_won: int = 0
    endpoints_ejected: int = 0
    half_open_probes: int = 0
    encodings: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        *,
        requests: int = 0,
        inputs: int = 0,
        truncated: int = 0,
        retries: int = 0,
        prompt_tokens: int = 0,
        cache_hits: int = 0,
        cache_misses: int = 0,
        cache_bytes_read: int = 0,
        cache_bytes_written: int = 0,
        cache_errors: int = 0,
        proxy_refusals: int = 0,
        hedges: int = 0,
        hedges_won: int = 0,
        endpoints_ejected: int = 0,
        half_open_probes: int = 0,
    ) -> None:
        """Add to the counters atomically."""
        with self._lock:
            self.proxy_refusals += proxy_refusals
            self.cache_hits += cache_hits
            self.cache_misses += cache_misses
            self.cache_bytes_read += cache_bytes_read
            self.cache_bytes_written += cache_bytes_written
            self.cache_errors += cache_errors
            self.hedges += hedges
            self.hedges_won += hedges_won
            self.endpoints_ejected += endpoints_ejected
            self.half_open_probes += half_open_probes
            self.requests += requests
            self.inputs += inputs
            self.truncated += truncated
            self.retries += retries
            self.prompt_tokens += prompt_tokens
