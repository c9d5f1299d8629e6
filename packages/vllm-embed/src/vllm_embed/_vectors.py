"""The one L2 normaliser: the client's ``normalize=True`` / client-side dimensions and the
adapters (``vllm_embed.adapters.l2_normalize``) scale rows the same way."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["l2_normalize"]


def l2_normalize(vectors: npt.ArrayLike, *, in_place: bool = False) -> npt.NDArray[np.float32]:
    """Rows (or one vector) scaled to unit L2 length, as float32; an all-zero row stays zero.

    ``in_place=True`` overwrites ``vectors`` (a writable float32 array) instead of
    allocating a new one, and returns it.
    """
    array: npt.NDArray[Any] = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    out = array if in_place else np.zeros_like(array)
    np.divide(array, norms, out=out, where=norms > 0)
    return out
