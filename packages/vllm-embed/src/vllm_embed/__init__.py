"""Embeddings from your own vLLM (or any OpenAI-compatible) server.

>>> from vllm_embed import EmbeddingClient
>>> with EmbeddingClient("http://localhost:8000/v1") as client:
...     vectors = client.embed(["hello", "world"])      # numpy float32 (2, dim)
"""

from vllm_embed._async_client import AsyncEmbeddingClient
from vllm_embed._cache import CacheWarning, EmbeddingCache
from vllm_embed._client import EmbeddingClient
from vllm_embed._config import (
    PYTHON_NAME_MAP,
    ConfigWarning,
    EmbedConfig,
    UnknownConfigKeyWarning,
    load_config,
)
from vllm_embed._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CacheCorruptError,
    CacheError,
    CacheUnavailableError,
    ConfigError,
    ConfigFileError,
    ConfigValueError,
    ContextLengthError,
    DimensionMismatchError,
    DimensionsNotSupportedError,
    EncodingNotSupportedError,
    InvalidInputError,
    InvalidRowError,
    MigrationError,
    MissingDependencyError,
    MissingTextError,
    ModelNotFoundError,
    NoHealthyEndpointError,
    RateLimitError,
    RerankNotSupportedError,
    ServerEnvError,
    ServerError,
    ServerLaunchError,
    ServerStartError,
    StoreError,
    StoreFormatError,
    TLSCertificateError,
    VectorWidthError,
    VLLMEmbedError,
)
from vllm_embed._instructions import Instructions
from vllm_embed._multivector import maxsim
from vllm_embed._rerank import RerankResult
from vllm_embed._types import ClientStats, EmbedResult, ModelInfo, RetryPolicy, Secret, Timeout
from vllm_embed._version import __version__

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/core/test_public_api.py checks)
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncEmbeddingClient",
    "AuthenticationError",
    "BadRequestError",
    "CacheCorruptError",
    "CacheError",
    "CacheUnavailableError",
    "CacheWarning",
    "ClientStats",
    "ConfigError",
    "ConfigFileError",
    "ConfigValueError",
    "ConfigWarning",
    "ContextLengthError",
    "DimensionMismatchError",
    "DimensionsNotSupportedError",
    "EmbedConfig",
    "EmbedResult",
    "EmbeddingCache",
    "EmbeddingClient",
    "EncodingNotSupportedError",
    "Instructions",
    "InvalidInputError",
    "InvalidRowError",
    "MigrationError",
    "MissingDependencyError",
    "MissingTextError",
    "ModelInfo",
    "ModelNotFoundError",
    "NoHealthyEndpointError",
    "PYTHON_NAME_MAP",
    "RateLimitError",
    "RerankNotSupportedError",
    "RerankResult",
    "RetryPolicy",
    "Secret",
    "ServerEnvError",
    "ServerError",
    "ServerLaunchError",
    "ServerStartError",
    "StoreError",
    "StoreFormatError",
    "TLSCertificateError",
    "Timeout",
    "UnknownConfigKeyWarning",
    "VLLMEmbedError",
    "VectorWidthError",
    "__version__",
    "load_config",
    "maxsim",
]
