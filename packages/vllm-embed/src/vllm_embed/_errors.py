"""Every error vllm-embed raises, one class per meaning.

Each message says what happened *and what to do*. Low-level errors (httpx,
json, OS) are translated at one boundary and chained with ``raise ... from exc``.
API keys never appear in any message, repr or attribute here.

    VLLMEmbedError
    ├── InvalidInputError            (also ValueError)  non-string / None input, empty query
    │   └── InvalidRowError          a dataset row whose text is missing / not a string
    ├── MissingDependencyError       (also ImportError)  an optional extra is not installed
    ├── ConfigError                  (also ValueError)
    │   ├── ConfigFileError          missing, unreadable, syntax error (line/column), module raised
    │   └── ConfigValueError         no base_url, bad dimension, bad type; bad Timeout,
    │                                RetryPolicy, encoding or ServerSpec values
    ├── APIError                     anything that came from talking to a server
    │   ├── APIConnectionError       cannot connect / connection dropped (after retries)
    │   │   ├── APITimeoutError      request timed out (after retries)
    │   │   ├── NoHealthyEndpointError  every configured base URL is marked down
    │   │   └── TLSCertificateError  the server's certificate did not verify (never retried)
    │   ├── EncodingNotSupportedError  server answered no usable encoding_format
    │   ├── RerankNotSupportedError  the server has no rerank / score route
    │   ├── VectorWidthError         vectors of another width than asked / seen (a gateway
    │   │                            mangled them); never cached, never written
    │   └── APIStatusError           server answered with an HTTP error status
    │       ├── BadRequestError              400 (generic)
    │       │   ├── InputNotSupportedError   400, no chat template / no image input for the model
    │       │   ├── ContextLengthError       400, input longer than max_model_len
    │       │   └── DimensionsNotSupportedError  400, `dimensions` on a non-Matryoshka model
    │       ├── AuthenticationError          401 / 403
    │       ├── ModelNotFoundError           404 for the model (lists served models)
    │       ├── RateLimitError               429 (after retries)
    │       └── ServerError                  5xx (after retries)
    ├── DimensionMismatchError       a store's / config's dimension != the server's
    ├── StoreError                   vector-store reading / writing / migration
    │   ├── StoreFormatError         unknown or corrupt store format
    │   │   ├── PickleConsentError       a FAISS .pkl would be unpickled without consent  [faiss]
    │   │   ├── UnsupportedTableError    a table shape that cannot be migrated safely
    │   │   ├── TextColumnTypeError      the text column does not hold text
    │   │   └── VectorColumnTypeError    the vector column is not a pgvector vector
    │   ├── PostgresDriverMissingError   psycopg 3 missing (the [postgres] extra)
    │   ├── PostgresConnectionError      database unreachable / connection lost
    │   ├── QdrantConnectionError        Qdrant server unreachable or refused the API key
    │   ├── InsufficientPrivilegeError   the user may not replace the table
    │   ├── TableLockedError             another session holds the table's lock
    │   └── MigrationError           a migration could not complete (original untouched)
    │       ├── MissingTextError     records without text (ids listed); nothing sent or written
    │       │   └── RowsWithoutTextError     rows of a Postgres table without text
    │       └── UnsupportedIndexError    a FAISS index that cannot be rebuilt alike  [faiss]
    ├── CacheError                   the embedding cache (``cache=...``)
    │   ├── CacheUnavailableError    Redis down, SQLite locked/unwritable (raised with strict=True)
    │   └── CacheCorruptError        the SQLite cache file is damaged (says how to clear it)
    └── ServerLaunchError            the vLLM launcher (``vllm-embed serve``, test fixtures);
        │                            carries ``log_path`` and the tail of the log
        ├── ServerEnvError           the server's virtual environment could not be built
        └── ServerStartError         vLLM exited, or did not answer /health in time

Warnings (``warnings.warn``, not raised): ``ConfigWarning`` (a ``UserWarning``) and its
``UnknownConfigKeyWarning`` (a config key vllm-embed does not use); ``CacheWarning`` (a
cache that is not strict could not be used; embedding goes on without it).

Classes marked ``[faiss]`` are defined beside their store format
(:mod:`vllm_embed.migrate.faiss`) and exported there; every other class above is defined
here and exported by :mod:`vllm_embed` (the Postgres ones also by
:mod:`vllm_embed.migrate.pgvector`). A new error
class anywhere in the package is drawn in this tree (tests/core/test_errors.py checks).

Misuse of the Python API raises Python's own exceptions, as the standard library does:
``TypeError`` (a ``Secret`` of a non-string; pickling a ``Secret``), ``RuntimeError``
(a call on a closed client; starting a server twice). Internal signals never leave the
client: ``RetryableStatus`` and ``Renegotiate`` (the request path), ``ProtocolError`` and
``Disconnected`` (the lean HTTP/1.1 transport; translated at its boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CacheCorruptError",
    "CacheError",
    "CacheUnavailableError",
    "ConfigError",
    "ConfigFileError",
    "ConfigValueError",
    "ContextLengthError",
    "DimensionMismatchError",
    "DimensionsNotSupportedError",
    "EncodingNotSupportedError",
    "InputNotSupportedError",
    "InsufficientPrivilegeError",
    "InvalidInputError",
    "InvalidRowError",
    "MigrationError",
    "MissingDependencyError",
    "MissingTextError",
    "ModelNotFoundError",
    "NoHealthyEndpointError",
    "PostgresConnectionError",
    "PostgresDriverMissingError",
    "QdrantConnectionError",
    "RateLimitError",
    "RerankNotSupportedError",
    "RowsWithoutTextError",
    "ServerEnvError",
    "ServerError",
    "ServerLaunchError",
    "ServerStartError",
    "StoreError",
    "StoreFormatError",
    "TLSCertificateError",
    "TableLockedError",
    "TextColumnTypeError",
    "UnsupportedTableError",
    "VLLMEmbedError",
    "VectorColumnTypeError",
    "VectorWidthError",
]


def _rebuild_error(
    cls: type[VLLMEmbedError], args: tuple[Any, ...], state: dict[str, Any]
) -> VLLMEmbedError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class VLLMEmbedError(Exception):
    """Base class of every error raised by vllm-embed.

    Every error pickles with its attributes (keyword-only constructor arguments
    included), so it crosses process boundaries intact (Ray workers, multiprocessing).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class InvalidInputError(VLLMEmbedError, ValueError):
    """An input that cannot be embedded (None, not a string, ...)."""


class InvalidRowError(InvalidInputError):
    """A dataset row whose text is missing or not a string.

    ``row`` is the offending row (a dict of its columns; long values shortened),
    ``column`` the text column, ``location`` where it is when known (file and line or
    row number).
    """

    def __init__(
        self,
        message: str,
        *,
        row: dict[str, Any] | None = None,
        column: str | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.location = location


class MissingDependencyError(VLLMEmbedError, ImportError):
    """An optional dependency is not installed; the message names what to install."""


class ConfigError(VLLMEmbedError, ValueError):
    """A configuration could not be read or makes no sense."""


class ConfigFileError(ConfigError):
    """A config file is missing, unreadable, malformed, or (Python) raised on import."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column


class ConfigValueError(ConfigError):
    """A config value is missing or invalid (e.g. no base_url, dimension <= 0)."""


class APIError(VLLMEmbedError):
    """Something went wrong talking to an embedding server.

    ``url`` is the endpoint involved (never carries credentials).
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class APIConnectionError(APIError):
    """The server could not be reached (refused, reset, DNS) after all retries."""


class APITimeoutError(APIConnectionError):
    """A request timed out after all retries."""


class NoHealthyEndpointError(APIConnectionError):
    """Every configured base URL is currently marked down."""


class TLSCertificateError(APIConnectionError):
    """The server's TLS certificate did not verify (private CA, wrong host name, expired).

    Raised at once, never retried: no retry can fix it. The message names the fix:
    ``verify="/path/to/ca.pem"`` (or the ``SSL_CERT_FILE`` environment variable).
    """


class VectorWidthError(APIError):
    """A response's vectors are not as wide as asked, or as the same server's earlier
    vectors were: a gateway that ignored ``encoding_format`` and re-read the vectors, or a
    model swapped behind the URL. The batch is never cached nor written to a store."""


class RerankNotSupportedError(APIError):
    """The server has no rerank / score route (tried vLLM's, Jina's, Cohere's and TEI's)."""


class EncodingNotSupportedError(APIError):
    """The server accepted none of the response encodings the client can read."""


class APIStatusError(APIError):
    """The server answered with an HTTP error status.

    Carries ``status_code``, the response ``body`` (parsed JSON when possible, else
    text) and ``request_id`` (from ``x-request-id`` when the server sends one).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int,
        body: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400: the server rejected the request."""


class InputNotSupportedError(BadRequestError):
    """400: the server cannot take this input: a conversation without a chat template, or
    an image for a model that is not multimodal. The message names the fix."""


class ContextLengthError(BadRequestError):
    """400: an input is longer than the model's context (max_model_len).

    ``max_model_len`` is the server's limit when known, ``input_index`` the position
    of the offending input in the caller's list when known.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int = 400,
        body: Any = None,
        request_id: str | None = None,
        max_model_len: int | None = None,
        input_index: int | None = None,
    ) -> None:
        super().__init__(
            message, url=url, status_code=status_code, body=body, request_id=request_id
        )
        self.max_model_len = max_model_len
        self.input_index = input_index


class DimensionsNotSupportedError(BadRequestError):
    """400: ``dimensions`` was sent to a model that vLLM did not load as Matryoshka."""


class AuthenticationError(APIStatusError):
    """401/403: the API key is missing or wrong."""


class ModelNotFoundError(APIStatusError):
    """404: the requested model is not served. ``available`` lists what is."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int = 404,
        body: Any = None,
        request_id: str | None = None,
        available: list[str] | None = None,
    ) -> None:
        super().__init__(
            message, url=url, status_code=status_code, body=body, request_id=request_id
        )
        self.available = list(available or [])


class RateLimitError(APIStatusError):
    """429 after all retries."""


class ServerError(APIStatusError):
    """5xx after all retries."""


class DimensionMismatchError(VLLMEmbedError):
    """A store or config declares one dimension, the server produces another."""

    def __init__(
        self,
        message: str,
        *,
        expected: int | None = None,
        actual: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.path = path


class StoreError(VLLMEmbedError):
    """A vector store could not be read, written or migrated."""


class StoreFormatError(StoreError):
    """The store's format is unknown, or the file is corrupt / inconsistent."""


class MigrationError(StoreError):
    """A migration stopped before completing. The original store is untouched."""


class MissingTextError(MigrationError):
    """Some records have no text to embed; nothing was sent and nothing written."""

    def __init__(self, message: str, *, ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        #: The ids of the records without text (the message lists the first few).
        self.ids: list[str] = list(ids)


class UnsupportedTableError(StoreFormatError):
    """The table's shape cannot be migrated safely (no unique key, foreign keys to it, ...)."""


class TextColumnTypeError(StoreFormatError):
    """The column named as the text column does not hold text."""


class VectorColumnTypeError(StoreFormatError):
    """The column named as the vector column is not a pgvector ``vector``."""


class PostgresDriverMissingError(StoreError):
    """psycopg 3 is not installed: ``pip install 'vllm-embed[postgres]'``."""


class PostgresConnectionError(StoreError):
    """The database could not be reached, or the connection was lost (nothing half-done)."""


class QdrantConnectionError(StoreError):
    """A Qdrant server could not be reached, or refused the API key (nothing was written
    by the failed call; the message never holds the key)."""


class InsufficientPrivilegeError(StoreError):
    """The database user may not replace the table (owner + CREATE on its schema needed)."""


class TableLockedError(StoreError):
    """Another session holds a lock on the table longer than ``lock_timeout``."""


class RowsWithoutTextError(MissingTextError):
    """Rows of a Postgres table have no text to embed; nothing was sent or written."""


class ServerLaunchError(VLLMEmbedError):
    """The vLLM server launcher failed. The explanation is in a log: ``log_path`` names it
    and ``log_tail`` holds its last lines (also in the message, so a failed start is
    diagnosable from the exception alone: pytest shows it, the CLI prints it)."""

    def __init__(self, message: str, *, log_path: Path | None = None, log_tail: str = "") -> None:
        full = message
        if log_path is not None:
            full += f"\nFull log: {log_path}"
        if log_tail:
            full += f"\n--- last lines of the log ---\n{log_tail}"
        super().__init__(full)
        self.log_path = log_path
        self.log_tail = log_tail


class ServerEnvError(ServerLaunchError):
    """The vLLM server's virtual environment could not be created or installed."""


class ServerStartError(ServerLaunchError):
    """The vLLM server exited, or did not answer ``/health`` before the deadline."""


class CacheError(VLLMEmbedError):
    """The embedding cache could not be used. ``location`` is where it is (no password)."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


class CacheUnavailableError(CacheError):
    """The cache could not be read or written (Redis down, SQLite locked or unwritable).

    Raised only by caches opened with ``strict=True``; otherwise embedding goes on without
    the cache, with one :class:`~vllm_embed.CacheWarning`.
    """


class CacheCorruptError(CacheError):
    """The SQLite cache file is damaged or is not a cache. The message says how to clear it."""
