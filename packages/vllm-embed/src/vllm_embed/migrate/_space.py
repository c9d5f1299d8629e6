"""Which model made a store: the embedding space recorded with every store we write.

A model swap at the SAME dimension breaks nothing visibly and degrades retrieval
silently. So every store ``vllm-embed migrate`` writes records its embedding space:
the server's model id, the dimension, the instruction applied to documents (and to
queries), and whether the stored rows are unit vectors. Formats with a free slot keep
it inside the store (nano-vectordb ``additional_data``, Chroma collection metadata,
kano's ``meta`` table, a Postgres column comment); the others get a sidecar file
(:func:`sidecar_path`).

``vllm-embed doctor --store`` compares a store's recorded space with the live server's
(:meth:`EmbeddingSpace.differences`); a store without a record is judged by a probe:
a few stored texts are embedded again and compared with their stored vectors
(:func:`judge_probe`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import InvalidInputError, StoreFormatError

if TYPE_CHECKING:
    from vllm_embed._base import BaseEmbeddingClient

__all__ = [
    "SIDECAR_SUFFIX",
    "SPACE_KEY",
    "EmbeddingSpace",
    "ProbeVerdict",
    "judge_probe",
    "read_sidecar",
    "sidecar_path",
    "space_of_client",
    "write_sidecar",
    "write_space_file",
]

#: The key under which a space is stored inside a store's own metadata slot.
SPACE_KEY = "vllm_embed_space"
#: ``database.json`` -> ``database.json.vllm-embed-space.json``; a directory store keeps
#: ``vllm-embed-space.json`` inside it.
SIDECAR_SUFFIX = ".vllm-embed-space.json"
_DIR_SIDECAR = "vllm-embed-space.json"
_FORMAT_VERSION = 1

#: Mean cosine between stored and fresh vectors at or above which a store is judged to
#: come from the same model (float16 storage and batch effects stay far above this).
SAME_COSINE = 0.98
#: At or below this, clearly another model.
DIFFERENT_COSINE = 0.90


@dataclass(frozen=True)
class EmbeddingSpace:
    """What determines the vectors in a store.

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


def space_of_client(client: BaseEmbeddingClient, *, normalized: bool = True) -> EmbeddingSpace:
    """The space a (sync) client embeds into: asks the server for model and dimension.

    ``normalized`` says whether the store keeps unit vectors (most do; pass the store's
    own convention).
    """
    from vllm_embed import __version__

    model: str = client.model_name()  # type: ignore[attr-defined]
    dimension: int = client.dimension()  # type: ignore[attr-defined]
    instr = client.instructions_for(model)
    return EmbeddingSpace(
        model=model,
        dimension=int(dimension),
        document_instruction=instr.document,
        query_instruction=instr.query,
        normalized=normalized,
        tool_version=__version__,
        created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def sidecar_path(store_path: str | os.PathLike[str]) -> Path:
    """Where a store without a metadata slot keeps its record."""
    path = Path(store_path)
    if path.is_dir():
        return path / _DIR_SIDECAR
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(store_path: str | os.PathLike[str]) -> EmbeddingSpace | None:
    """The record beside (or inside) a store, or None when there is none."""
    side = sidecar_path(store_path)
    if not side.is_file():
        return None
    return EmbeddingSpace.from_json(side.read_text(encoding="utf-8"))


def write_sidecar(store_path: str | os.PathLike[str], space: EmbeddingSpace) -> Path:
    """Write the record atomically (temp file + fsync + replace); returns its path."""
    return write_space_file(sidecar_path(store_path), space)


def write_space_file(side: Path, space: EmbeddingSpace) -> Path:
    """Write a record to the file ``side`` atomically (temp file + fsync + replace)."""
    tmp = side.with_name(side.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(space.to_dict(), f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, side)
    return side


@dataclass(frozen=True)
class ProbeVerdict:
    """How a store's stored vectors compare with fresh ones for the same texts."""

    verdict: Literal["same", "different", "unsure"]
    mean_cosine: float
    min_cosine: float
    count: int

    def describe(self) -> str:
        return (
            f"{self.count} stored texts re-embedded: mean cosine {self.mean_cosine:.4f}, "
            f"min {self.min_cosine:.4f} (same model >= {SAME_COSINE}, "
            f"another model <= {DIFFERENT_COSINE})"
        )


def judge_probe(
    stored: npt.NDArray[np.floating[Any]], fresh: npt.NDArray[np.floating[Any]]
) -> ProbeVerdict:
    """Compare stored vectors with freshly embedded ones, row by row (cosine).

    Same dimension required (a different one is a plain dimension mismatch).
    """
    a = np.asarray(stored, dtype=np.float64)
    b = np.asarray(fresh, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise InvalidInputError(
            f"probe needs two equal non-empty matrices, got {a.shape} and {b.shape}"
        )
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = np.where((na * nb) == 0, 1.0, na * nb)
    cos = (a * b).sum(axis=1) / denom
    mean, low = float(cos.mean()), float(cos.min())
    if not math.isfinite(mean):
        verdict: Literal["same", "different", "unsure"] = "unsure"
    elif mean >= SAME_COSINE and low >= DIFFERENT_COSINE:
        verdict = "same"
    elif mean <= DIFFERENT_COSINE:
        verdict = "different"
    else:
        verdict = "unsure"
    return ProbeVerdict(verdict, mean, low, int(a.shape[0]))
