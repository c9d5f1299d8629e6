"""One collection as read (everything needed to create it again) and the text each of its
records is embedded from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._dirstore import PartView, SampledPart
from .._space import SPACE_KEY, EmbeddingSpace
from .._store import F32Matrix
from ..llamaindex import LLAMAINDEX_NODE_KEY, node_embed_text
from ._client import DEFAULT_DATABASE, DEFAULT_TENANT, label


@dataclass
class Collection(SampledPart):
    """One collection as read: everything needed to create it again."""

    name: str
    metadata: dict[str, Any] | None
    configuration: dict[str, Any]
    dimension: int | None
    ids: list[str] = field(default_factory=list)
    documents: list[str | None] = field(default_factory=list)
    metadatas: list[dict[str, Any] | None] = field(default_factory=list)
    uris: list[str | None] = field(default_factory=list)
    start: int = 0  # index of the first record in the store's flat lists
    #: (texts, stored vectors) of a few records, for ``doctor --store``'s probe.
    sample: tuple[list[str], F32Matrix] | None = None
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE

    @property
    def group(self) -> tuple[str, str]:
        """(tenant, database): the client this collection is opened with."""
        return (self.tenant, self.database)

    @property
    def label(self) -> str:
        """The name in messages and ``--collection``: ``NAME`` in the default tenant and
        database, else ``TENANT/DATABASE/NAME``."""
        return label(self.tenant, self.database, self.name)

    @property
    def llamaindex(self) -> bool:
        """Written by LlamaIndex's ``ChromaVectorStore`` (node JSON in the metadata)."""
        return any(m is not None and LLAMAINDEX_NODE_KEY in m for m in self.metadatas)

    def texts(self) -> list[str | None]:
        """The text each record is embedded from: the document (plain chromadb, LangChain),
        or for LlamaIndex nodes what LlamaIndex embeds (the node rebuilt from its metadata
        and the document); None for a record without a document."""
        if not self.llamaindex:
            return list(self.documents)
        return [
            node_embed_text(m, d) if isinstance(d, str) else None
            for d, m in zip(self.documents, self.metadatas, strict=True)
        ]

    def recorded_space(self) -> EmbeddingSpace | None:
        """The embedding space recorded in the collection's metadata (``SPACE_KEY``)."""
        value = (self.metadata or {}).get(SPACE_KEY)
        return EmbeddingSpace.from_json(value) if isinstance(value, str) else None


#: One collection of a `ChromaStore` as ``doctor --store`` judges it (selector: what
#: ``--collection`` takes to pick it, see `ChromaStore.collections`).
ChromaCollectionView = PartView


def by_group(collections: list[Collection]) -> list[tuple[tuple[str, str], list[Collection]]]:
    """Collections grouped by (tenant, database), in their order (one client per group)."""
    groups: dict[tuple[str, str], list[Collection]] = {}
    for c in collections:
        groups.setdefault(c.group, []).append(c)
    return list(groups.items())


def describe(collections: list[Collection]) -> tuple[str, str]:
    """The store's ``format`` and ``text_field`` as the CLI reports them."""
    llama = any(c.llamaindex for c in collections)
    kind = "LlamaIndex ChromaVectorStore" if llama else None
    if kind is None and [c.name for c in collections] == ["langchain"]:
        kind = "LangChain Chroma"
    names = ", ".join(c.label for c in collections)
    fmt = f"Chroma ({kind}; collection {names})" if kind else f"Chroma ({names})"
    text_field = (
        "document (+ LlamaIndex node metadata, as LlamaIndex embeds it)" if llama else "document"
    )
    return fmt, text_field
