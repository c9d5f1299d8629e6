"""BaseEmbeddingClient: everything both twins share that does no I/O.

It is built in layers, one job per module, each on top of the one below:

- :mod:`vllm_embed._options`: the settings (the constructor's keywords, documented and
  validated once, read from the environment when not given);
- :mod:`vllm_embed._assembly`: planning one call (instructions, truncation, batches, the
  cache space) and putting its results together (:class:`Output`, client-side dimensions
  and normalisation, truncation judging);
- :mod:`vllm_embed._steps`: the request logic as generators of steps (one request with
  failover, retries, renegotiation, one batch, discovery, tokenize, rerank / score /
  multi-vector / chat).

:mod:`vllm_embed._client` and :mod:`vllm_embed._async_client` only run those steps
(``_run``: blocking or awaiting), spread batches over threads or tasks (``_map``) and own
the connections (``_init_io``).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from vllm_embed._assembly import EmbedPlan, Output
from vllm_embed._options import (
    ClientOptions,
    CountTruncated,
    EmbedDType,
    Encoding,
    HttpT,
    Kind,
    Truncate,
)
from vllm_embed._steps import ClientSteps, Send, Steps

__all__ = [
    "BaseEmbeddingClient",
    "CountTruncated",
    "EmbedDType",
    "EmbedPlan",
    "Encoding",
    "Kind",
    "Output",
    "Send",
    "Steps",
    "Truncate",
]


class BaseEmbeddingClient(ClientSteps[HttpT]):
    # The settings are documented once, with the keywords, on ClientOptions.
    __doc__ = ClientOptions.__doc__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A twin's signature (``help()``, ``inspect.signature``) names its http client type:
        ``class EmbeddingClient(BaseEmbeddingClient[httpx.Client])`` shows
        ``http_client: httpx.Client | None``."""
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = typing.get_args(base)
            if args and isinstance(args[0], type):
                http = f"{args[0].__module__}.{args[0].__qualname__} | None"
                sig = inspect.signature(ClientOptions.__init__)
                params = [
                    p.replace(annotation=http) if p.name == "http_client" else p
                    for p in list(sig.parameters.values())[1:]  # without self
                ]
                cls.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
