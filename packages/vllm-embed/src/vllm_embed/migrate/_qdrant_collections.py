"""Reading a Qdrant collection for migration, whatever holds it (local-mode directory or
server): where its text is, which vector is re-embedded, what an earlier run recorded.

- Text: LangChain's ``QdrantVectorStore`` keeps it in the ``page_content`` payload,
  LlamaIndex's in its node JSON (``_node_content``; the text is what LlamaIndex embeds),
  plain qdrant-client in the payload key given with ``--text-field``.
- Vector: the unnamed vector, the only named one, LlamaIndex's ``text-dense``, or the one
  given with ``--vector-name``; the others are kept.
- Server URLs: `looks_like_qdrant_url` tells one apart from other servers' URLs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vllm_embed._errors import StoreFormatError

from .llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text

__all__ = [
    "LANGCHAIN_CONTENT_KEY",
    "LLAMAINDEX_VECTOR",
    "SOURCE_KEY",
    "UNNAMED",
    "choose_vector",
    "looks_like_qdrant_url",
    "recorded_source",
    "texts_of",
]

LANGCHAIN_CONTENT_KEY = "page_content"
LLAMAINDEX_VECTOR = "text-dense"
#: The unnamed (default) vector, as qdrant-client names it in a named-vector dict.
UNNAMED = ""
#: Collection metadata key: the vector and payload key a migration was told to use.
SOURCE_KEY = "vllm_embed_source"


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
