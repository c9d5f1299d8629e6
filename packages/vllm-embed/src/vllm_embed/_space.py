"""The embedding space: everything that decides the vector a text gets, said once.

:class:`ClientSpace` is what a client's options make of one model: the model id the
server reports, the instruction applied to documents and to queries, ``dimensions`` (and
whether the client cuts them), normalisation and the truncation policy and limit. The
client builds it one way (``space_for`` in ``_assembly``); two things are derived from it:

- :class:`EmbeddingSpace` (:meth:`ClientSpace.record`), the record a store keeps of the
  space its vectors live in: the model, the dimension the vectors have, the instruction
  applied to the stored texts and to queries, whether the rows are unit vectors, and the
  tool that wrote it. Its JSON (``format_version`` 1) is what stores and sidecar files
  hold; ``vllm-embed doctor --store`` compares two records (:meth:`EmbeddingSpace.differences`).
- the cache's key space, :class:`vllm_embed._cache.CacheKeySpace`: a ClientSpace plus the
  fields only the cache has (the role, the transfer and storage dtypes, the namespace and
  the model's generation), hashed into the cache keys.

Nothing here does I/O; the API key is in none of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from vllm_embed._errors import StoreFormatError

__all__ = ["ClientSpace", "EmbeddingSpace"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClientSpace:
    """Everything a client's options change about the vectors one model gives.

    ``dimensions`` is the width asked for (None: the model's own) and ``limit`` the tokens
    an input may have (None: not known). A text's role picks its instruction
    (:meth:`instruction`); the role itself is not part of the space.
    """

    model: str
    document_instruction: str = ""
    query_instruction: str = ""
    dimensions: int | None = None
    client_side_dimensions: bool = False
    normalize: bool = False
    truncate: str = "end"
    limit: int | None = None

    def instruction(self, role: str) -> str:
        """The prefix a text of this role gets: ``query``, ``document``, else none."""
        if role == "query":
            return self.query_instruction
        if role == "document":
            return self.document_instruction
        return ""

    def record(
        self,
        dimension: int,
        *,
        role: str = "document",
        normalized: bool,
        tool_version: str = "",
        created_at: str = "",
    ) -> EmbeddingSpace:
        """The record of a store whose texts were embedded in this space as ``role``.

        ``dimension`` is the width the stored vectors have and ``normalized`` whether
        they are unit vectors (the store's convention, or what its rows show).
        """
        return EmbeddingSpace(
            model=self.model,
            dimension=int(dimension),
            document_instruction=self.instruction(role),
            query_instruction=self.query_instruction,
            normalized=normalized,
            tool_version=tool_version,
            created_at=created_at,
        )


@dataclass(frozen=True)
class EmbeddingSpace:
    """The record a store keeps of the space its vectors live in.

    Two stores are comparable only when ``model``, ``dimension`` and
    ``document_instruction`` agree; ``query_instruction`` matters to the queries run
    against the store and is compared too.
    """

    model: str
    dimension: int
    document_instruction: str = ""
    query_instruction: str = ""
    normalized: bool = True
    #: Tool and version that wrote the record, and when (ISO 8601, UTC).
    tool: str = "vllm-embed"
    tool_version: str = ""
    created_at: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``format_version`` included)."""
        data = asdict(self)
        data["format_version"] = _FORMAT_VERSION
        return data

    def to_json(self) -> str:
        """Compact JSON, for stores whose metadata slot holds strings only."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingSpace:
        """Read a record; raises `StoreFormatError` when it is not one."""
        try:
            model = data["model"]
            dimension = data["dimension"]
        except (KeyError, TypeError) as exc:
            raise StoreFormatError(
                f"an embedding-space record needs 'model' and 'dimension', got {data!r}"
            ) from exc
        if not isinstance(model, str) or isinstance(dimension, bool):
            raise StoreFormatError(f"malformed embedding-space record: {data!r}")
        try:
            dim = int(dimension)
        except (TypeError, ValueError) as exc:
            raise StoreFormatError(f"malformed embedding-space record: {data!r}") from exc
        return cls(
            model=model,
            dimension=dim,
            document_instruction=str(data.get("document_instruction") or ""),
            query_instruction=str(data.get("query_instruction") or ""),
            normalized=bool(data.get("normalized", True)),
            tool=str(data.get("tool") or "vllm-embed"),
            tool_version=str(data.get("tool_version") or ""),
            created_at=str(data.get("created_at") or ""),
        )

    @classmethod
    def from_json(cls, text: str) -> EmbeddingSpace:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreFormatError(f"embedding-space record is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise StoreFormatError("embedding-space record must be a JSON object")
        return cls.from_dict(data)

    def differences(self, other: EmbeddingSpace) -> list[str]:
        """Human-readable differences (empty when both describe the same space)."""
        out: list[str] = []
        if self.model != other.model:
            out.append(f"model {self.model!r} != {other.model!r}")
        if self.dimension != other.dimension:
            out.append(f"dimension {self.dimension} != {other.dimension}")
        if self.document_instruction != other.document_instruction:
            out.append(
                f"document instruction {self.document_instruction!r} != "
                f"{other.document_instruction!r}"
            )
        if self.query_instruction != other.query_instruction:
            out.append(
                f"query instruction {self.query_instruction!r} != {other.query_instruction!r}"
            )
        return out

    def describe(self) -> str:
        """One line: ``model 'x', dim 384, document instruction 'passage: '``."""
        parts = [f"model {self.model!r}", f"dim {self.dimension}"]
        if self.document_instruction:
            parts.append(f"document instruction {self.document_instruction!r}")
        if self.query_instruction:
            parts.append(f"query instruction {self.query_instruction!r}")
        return ", ".join(parts)
