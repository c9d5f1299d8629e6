"""Defaults in one place: timeouts, retries, batching, concurrency.

(The environment variables are in the settings table, :mod:`vllm_embed._settings`.)
"""

from __future__ import annotations

from vllm_embed._version import __version__

DEFAULT_TIMEOUT_TOTAL = 60.0
DEFAULT_TIMEOUT_CONNECT = 5.0

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_INITIAL_DELAY = 0.5
DEFAULT_MAX_DELAY = 8.0
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_JITTER = 0.25
DEFAULT_RETRY_TOTAL_TIMEOUT = 120.0

#: Inputs per request. vLLM schedules every input of a request as its own prompt and
#: batches prompts across requests on the GPU, so the HTTP batch does not set the GPU batch:
#: it only sets the per-request overhead (HTTP, JSON, the API server's validation), on the
#: client and on the server alike. 256 keeps that overhead small while a response stays
#: about 1 MB at dimension 1024 and its vLLM ``metadata`` header (~110 bytes per input) far
#: below httpx's 100 KB limit for response heads. (The token budget below still splits
#: batches of long texts.)
DEFAULT_BATCH_SIZE = 256
DEFAULT_MAX_TOKENS_PER_REQUEST = 16384
DEFAULT_MAX_CONCURRENCY = 8

#: How long an endpoint that refused a connection is left alone before it is tried again.
ENDPOINT_COOLDOWN = 2.0
#: The cool-down doubles on each consecutive failure up to this bound.
ENDPOINT_MAX_COOLDOWN = 30.0

#: Consecutive read timeouts after which an endpoint is taken out (like a refused
#: connection: a cool-down, then one trial request, "half-open").
ENDPOINT_EJECT_TIMEOUTS = 2

#: Hedging (``hedge=True``): calls of at most this many inputs in one batch are hedged.
HEDGE_MAX_INPUTS = 8
#: The learned hedge delay: this quantile of the last HEDGE_WINDOW answer times ...
HEDGE_QUANTILE = 0.95
HEDGE_WINDOW = 200
#: ... once HEDGE_MIN_SAMPLES are in (before that HEDGE_INITIAL_DELAY), never below
#: HEDGE_MIN_DELAY (a floor against duplicating requests on sub-millisecond jitter).
HEDGE_MIN_SAMPLES = 10
HEDGE_INITIAL_DELAY = 0.05
HEDGE_MIN_DELAY = 0.001
#: A hedge's loser cancelled by the async client still counts as in flight on its server
#: this long (the server may still be busy with it; the sync client's loser really is).
HEDGE_LOSER_HOLD = 1.0

#: The short input used to discover the embedding dimension.
DIMENSION_PROBE_TEXT = "dimension probe"

#: Transfer encodings, cheapest first. ``bytes`` carries the server's token usage in its
#: ``metadata`` header, but that header overflows the one-page header buffer of a default
#: nginx or ingress-nginx at a few dozen rows (502): behind such a proxy the client moves
#: to ``bytes_only`` (the same body, no header, no usage) at the first refusal.
ENCODING_PREFERENCE: tuple[str, ...] = ("bytes", "bytes_only", "base64", "float")
#: The binary encodings (a proxy may refuse to carry them; see ``_wire.blocked_by_proxy``).
BINARY_ENCODINGS: frozenset[str] = frozenset({"bytes_only", "bytes"})
#: Statuses with which a proxy in front of vLLM refuses a binary answer or its headers:
#: 502 (nginx: "upstream sent too big header"), 413 and 431 (header / body limits).
PROXY_REFUSAL_STATUSES: frozenset[int] = frozenset({502, 413, 431})

#: Statuses that are worth another attempt (besides every 5xx).
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 409, 429})

USER_AGENT = f"vllm-embed/{__version__}"
