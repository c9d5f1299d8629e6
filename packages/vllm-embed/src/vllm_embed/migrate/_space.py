"""Which model made a store: the embedding space recorded with every store we write.

A model swap at the SAME dimension breaks nothing visibly and degrades retrieval
silently. So every store ``vllm-embed migrate`` writes records its embedding space
(:class:`~vllm_embed._space.EmbeddingSpace`, derived from the client's
:class:`~vllm_embed._space.ClientSpace`): the server's model id, the dimension, the
instruction applied to documents (and to queries), and whether the stored rows are unit
vectors. Formats with a free slot keep it inside the store (nano-vectordb
``additional_data``, Chroma collection metadata, kano's ``meta`` table, a Postgres column
comment); the others get a sidecar file (:func:`sidecar_path`).

``vllm-embed doctor --store`` compares a store's recorded space with the live server's
(:meth:`EmbeddingSpace.differences`); a store without a record is judged by a probe:
a few stored texts are embedded again and compared with their stored vectors
(:func:`judge_probe`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import InvalidInputError
from vllm_embed._space import EmbeddingSpace

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

#: Mean cosine between stored and fresh vectors at or above which a store is judged to
#: come from the same model (float16 storage and batch effects stay far above this).
SAME_COSINE = 0.98
#: At or below this, clearly another model.
DIFFERENT_COSINE = 0.90


def space_of_client(client: BaseEmbeddingClient, *, normalized: bool = True) -> EmbeddingSpace:
    """The record of the space a (sync) client embeds documents into (asks the server for
    the model and the dimension).

    ``normalized`` says whether the store keeps unit vectors (most do; pass the store's
    own convention).
    """
    from vllm_embed import __version__

    model: str = client.model_name()  # type: ignore[attr-defined]
    dimension: int = client.dimension()  # type: ignore[attr-defined]
    return client.space_for(model).record(
        dimension,
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
