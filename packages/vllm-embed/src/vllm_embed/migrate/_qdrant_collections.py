"""Reading a Qdrant collection for migration, whatever holds it (local-mode directory or
server): where its text is, which vector is re-embedded, what an earlier run recorded.

- Text: LangChain's ``QdrantVectorStore`` keeps it in the ``page_content`` payload,
  LlamaIndex's in its node JSON (``_node_content``; the text is what LlamaIndex embeds),
  plain qdrant-client in the payload key given with ``--text-field``.
- Vector: the unnamed vector, the only named one, LlamaIndex's ``text-dense``, or the one
  given with ``--vector-name``; the others are kept.
- Server URLs: `looks_like_qdrant_url` tells one apart from other servers' URLs;
  `connect_qdrant` opens one (key from ``QDRANT_API_KEY``, never shown) for migrate and
  doctor.
- doctor's probe: `probe_sample`, a few (text, stored vector) pairs, for a local-mode
  directory and a server alike.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MissingDependencyError, QdrantConnectionError, StoreFormatError
from vllm_embed._secrets import mask_url

from ._store import F32Matrix
from .llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text

__all__ = [
    "API_KEY_ENV",
    "LANGCHAIN_CONTENT_KEY",
    "LLAMAINDEX_VECTOR",
    "PROBE_SAMPLE",
    "SOURCE_KEY",
    "UNNAMED",
    "choose_vector",
    "connect_qdrant",
    "looks_like_qdrant_url",
    "probe_sample",
    "recorded_source",
    "texts_of",
]

LANGCHAIN_CONTENT_KEY = "page_content"
LLAMAINDEX_VECTOR = "text-dense"
#: The unnamed (default) vector, as qdrant-client names it in a named-vector dict.
UNNAMED = ""
#: Collection metadata key: the vector and payload key a migration was told to use.
SOURCE_KEY = "vllm_embed_source"
#: Environment variable with a Qdrant server's API key (never taken from the command line).
API_KEY_ENV = "QDRANT_API_KEY"
#: (text, stored vector) pairs kept for doctor's probe.
PROBE_SAMPLE = 16


def looks_like_qdrant_url(url: str) -> bool:
    """An http(s) URL on Qdrant's ports (6333 REST, 6334 gRPC) or a host named qdrant*
    (other servers' URLs, e.g. Milvus on 19530, are left to their formats)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    try:
        port = parts.port
    except ValueError:
        port = None
    return port in (6333, 6334) or "qdrant" in (parts.hostname or "")


def connect_qdrant(url: str, *, timeout: float = 10.0) -> Any:
    """A `QdrantClient` for ``url`` (key from ``QDRANT_API_KEY``), checked with one call.

    Raises `QdrantConnectionError` (no key in it) when the server cannot be reached or
    refuses the key.
    """
    try:
        from qdrant_client import QdrantClient
        from qdrant_client.http.exceptions import UnexpectedResponse
    except ImportError as exc:
        raise MissingDependencyError(
            "a Qdrant server URL needs the qdrant-client package: pip install qdrant-client"
        ) from exc
    shown = mask_url(url)
    key = os.environ.get(API_KEY_ENV) or None
    with warnings.catch_warnings():
        # "Api key is used with an insecure connection": the CLI says so, without the key
        warnings.simplefilter("ignore", UserWarning)
        client = QdrantClient(url=url, api_key=key, timeout=int(timeout), check_compatibility=False)
    try:
        client.get_collections()
    except UnexpectedResponse as exc:
        client.close()
        if exc.status_code in (401, 403):
            raise QdrantConnectionError(
                f"the Qdrant server at {shown} refused the API key (HTTP {exc.status_code}): set "
                f"{API_KEY_ENV} to a key with read-write access; nothing was written."
            ) from None
        raise QdrantConnectionError(
            f"the Qdrant server at {shown} answered HTTP {exc.status_code}; nothing was written."
        ) from None
    except Exception as exc:
        client.close()
        # the cause is not chained: a transport's exception may carry request headers
        raise QdrantConnectionError(
            f"cannot reach a Qdrant server at {shown} ({type(exc).__name__}): check the URL "
            "and that the server runs, then run the same command again; nothing was written."
        ) from None
    return client


def probe_sample(
    texts: list[str | None], stored: list[Any], count: int = PROBE_SAMPLE
) -> tuple[list[str], F32Matrix] | None:
    """Up to ``count`` (text, stored vector) pairs of points that have both, for doctor's
    probe (``stored[i]``: point i's re-embedded vector as read, or None)."""
    pairs = [
        (t, v)
        for t, v in zip(texts, stored, strict=True)
        if isinstance(t, str) and t.strip() and isinstance(v, list)
    ][:count]
    if not pairs:
        return None
    return [t for t, _ in pairs], np.asarray([v for _, v in pairs], dtype=np.float32)


def recorded_source(config: dict[str, Any]) -> dict[str, str]:
    """The ``--vector-name`` / ``--text-field`` an earlier migration recorded."""
    raw = (config.get("metadata") or {}).get(SOURCE_KEY)
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)}


def choose_vector(path: Path | str, name: str, config: dict[str, Any], wanted: str | None) -> str:
    vectors = config.get("vectors") or {}
    if "size" in vectors:  # one unnamed vector
        if wanted not in (None, UNNAMED):
            raise StoreFormatError(
                f"{path}: collection {name!r} has one unnamed vector; --vector-name "
                f"{wanted!r} does not apply."
            )
        return UNNAMED
    names = sorted(vectors)
    if not names:
        raise StoreFormatError(f"{path}: collection {name!r} has no dense vector to re-embed.")
    if wanted is not None:
        if wanted not in vectors:
            raise StoreFormatError(
                f"{path}: collection {name!r} has no vector {wanted!r}; vectors: "
                f"{', '.join(names)}."
            )
        return wanted
    if len(names) == 1:
        return str(names[0])
    if LLAMAINDEX_VECTOR in vectors:
        return LLAMAINDEX_VECTOR
    raise StoreFormatError(
        f"{path}: collection {name!r} has {len(names)} named vectors ({', '.join(names)}): "
        "name the one to re-embed with --vector-name (the others are kept unchanged)."
    )


def texts_of(
    path: Path | str,
    name: str,
    points: list[tuple[Any, dict[str, Any], dict[str, Any]]],
    text_field: str | None,
) -> tuple[list[str | None], str, str]:
    """(texts, the writer's name, where the text comes from)."""
    payloads = [p[1] for p in points]
    if text_field is not None:
        return (
            [_str(p.get(text_field)) for p in payloads],
            "qdrant-client",
            f"payload {text_field!r}",
        )
    if any(LLAMAINDEX_NODE_KEY in p for p in payloads):
        return (
            [node_embed_text(p) for p in payloads],
            "LlamaIndex QdrantVectorStore",
            f"payload {LLAMAINDEX_NODE_KEY!r} (as LlamaIndex embeds it)",
        )
    if any(LANGCHAIN_CONTENT_KEY in p for p in payloads) or not payloads:
        texts = [_str(p.get(LANGCHAIN_CONTENT_KEY)) for p in payloads]
        return texts, "LangChain QdrantVectorStore", f"payload {LANGCHAIN_CONTENT_KEY!r}"
    keys = sorted({k for p in payloads[:50] for k in p})
    raise StoreFormatError(
        f"{path}: collection {name!r} was not written by LangChain (no {LANGCHAIN_CONTENT_KEY!r} "
        f"payload) or LlamaIndex (no {LLAMAINDEX_NODE_KEY!r}); name the payload key that holds "
        f"the text with --text-field (payload keys: {', '.join(keys) or 'none'})."
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
