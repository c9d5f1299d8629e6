"""The wire format of ``/v1/embeddings``: encoding negotiation, request bodies, ONE decoder.

No I/O here: the transports (:mod:`vllm_embed._transports`) move bytes, this module says
what the bytes mean.

The cheapest encoding a server supports wins, in this order:

``bytes``   vLLM only: the body is the raw vectors (``application/octet-stream``) and a JSON
            ``metadata`` response header describes each item (``index, embed_dtype,
            endianness, start, end, shape``) plus ``usage``. Decoded with one
            ``np.frombuffer`` over the body: no per-element work in Python.
``base64``  OpenAI and vLLM: little-endian float32 per item, base64 in JSON.
``float``   everyone (TEI, Ollama, old vLLM): JSON lists of numbers.

A server "rejects" an encoding when it answers 400/422 with a body that mentions
``encoding_format``, or when it ignores the request and answers in another encoding.
A rejected encoding is never asked of that server again (:class:`EncodingState`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed import _constants as C
from vllm_embed._errors import APIError, EncodingNotSupportedError

__all__ = [
    "Decoded",
    "EncodingState",
    "Layout",
    "build_body",
    "decode_response",
    "direct_layout",
    "parse_error_body",
    "preference_for",
    "quick_layout",
    "rejects_encoding",
]

_DTYPES: dict[tuple[str, str], np.dtype[Any]] = {
    ("float32", "little"): np.dtype("<f4"),
    ("float32", "big"): np.dtype(">f4"),
    ("float16", "little"): np.dtype("<f2"),
    ("float16", "big"): np.dtype(">f2"),
    ("float64", "little"): np.dtype("<f8"),
    ("float64", "big"): np.dtype(">f8"),
    # vLLM's default endianness is the server's "native" order; every platform vLLM runs
    # on is little-endian, and the client asks for "little" explicitly anyway.
    ("float32", "native"): np.dtype("<f4"),
    ("float16", "native"): np.dtype("<f2"),
    ("float64", "native"): np.dtype("<f8"),
}
_LE_F4 = np.dtype("<f4")


class EncodingState:
    """Which encodings one endpoint may still be asked for (thread-safe).

    ``candidates`` starts as the client's preference (``auto`` = bytes, base64, float) and
    only ever shrinks.
    """

    def __init__(self, preference: Sequence[str]) -> None:
        self._candidates = list(preference)
        self._lock = threading.Lock()
        self.rejected: list[str] = []

    @property
    def candidates(self) -> tuple[str, ...]:
        """Encodings not yet rejected, cheapest first."""
        return tuple(self._candidates)

    def current(self, url: str) -> str:
        """The encoding to ask for now; raises when every candidate was rejected."""
        cands = self._candidates
        if cands:
            return cands[0]
        raise EncodingNotSupportedError(
            f"The server at {url} accepted none of the encodings tried "
            f"({', '.join(self.rejected) or 'none'}). Use encoding='auto' so the client can "
            "fall back to plain float lists, or check that this is an embeddings server.",
            url=url,
        )

    def reject(self, encoding: str) -> None:
        """Never ask this endpoint for ``encoding`` again."""
        with self._lock:
            if encoding in self._candidates:
                self._candidates.remove(encoding)
                self.rejected.append(encoding)


def preference_for(setting: str) -> tuple[str, ...]:
    """The encodings to try for the client's ``encoding`` setting."""
    if setting == "auto":
        return C.ENCODING_PREFERENCE
    if setting in C.ENCODING_PREFERENCE:
        return (setting,)
    raise ValueError(f"encoding must be 'auto', 'bytes', 'base64' or 'float', got {setting!r}")


_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def build_body(
    *,
    model: str,
    inputs: Sequence[str],
    encoding: str,
    embed_dtype: str = "float32",
    dimensions: int | None = None,
    truncate_prompt_tokens: int | None = None,
) -> bytes:
    """The JSON body of one ``POST /v1/embeddings`` request.

    vLLM-only fields (``embed_dtype``, ``endianness``, ``truncate_prompt_tokens``) are sent
    only when they matter, so OpenAI-compatible servers that reject unknown fields are not
    disturbed.
    ``embed_dtype`` is only sent with the ``bytes`` encoding, whose metadata names the
    dtype of every item (base64 without metadata would be ambiguous).
    """
    payload: dict[str, Any] = {
        "model": model,
        "input": inputs if isinstance(inputs, list) else list(inputs),
        "encoding_format": encoding,
    }
    if encoding == "bytes":
        payload["endianness"] = "little"
        if embed_dtype != "float32":
            payload["embed_dtype"] = embed_dtype
    if dimensions is not None:
        payload["dimensions"] = dimensions
    if truncate_prompt_tokens is not None:
        payload["truncate_prompt_tokens"] = truncate_prompt_tokens
        payload["truncation_side"] = "right"  # keep the start of the text (vLLM >= 0.11)
    return _json_encode(payload).encode("utf-8")


def rejects_encoding(status: int, body: Any, encoding: str) -> bool:
    """True when an error response means "I do not support this encoding_format".

    400 (vLLM, OpenAI) and 422 (pydantic/FastAPI servers such as TEI) whose body mentions
    ``encoding_format`` (or "encoding format") are taken as a rejection of ``encoding``.
    """
    if status not in (400, 422) or encoding == "float":
        return False
    text = body if isinstance(body, str) else json.dumps(body)
    low = text.lower()
    return "encoding_format" in low or "encoding format" in low


@dataclass
class Decoded:
    """One decoded response: ``vectors`` (n, dim), in request order (float32 or float16)."""

    vectors: npt.NDArray[Any]
    encoding: str
    prompt_tokens: int
    model: str | None


def decode_response(
    *,
    content: bytes,
    content_type: str,
    metadata_header: str | None,
    n_inputs: int,
    url: str,
) -> Decoded:
    """Decode an embeddings response, whatever encoding the server actually chose.

    The answer is detected from the response itself (a ``metadata`` header plus a binary
    body means ``bytes``; JSON items with strings mean ``base64``; lists mean ``float``), so
    a server that silently ignores ``encoding_format`` still decodes correctly; the caller
    compares :attr:`Decoded.encoding` with what it asked for.
    """
    if metadata_header is not None and "json" not in content_type:
        return _decode_bytes(content, metadata_header, n_inputs, url)
    try:
        doc = json.loads(content)
    except ValueError as exc:
        raise APIError(
            f"The server at {url} sent a response that is neither JSON nor vLLM's binary "
            f"format (content-type {content_type!r}). Check that base_url points at an "
            "OpenAI-compatible /v1 API.",
            url=url,
        ) from exc
    return _decode_json(doc, n_inputs, url)


def _bad(url: str, why: str) -> APIError:
    return APIError(
        f"The server at {url} sent an embeddings response the client cannot read ({why}). "
        "Check that base_url points at an OpenAI-compatible embeddings API.",
        url=url,
    )


@dataclass(frozen=True)
class Layout:
    """A vLLM ``bytes`` response in the common shape: items 0..n-1 back to back from byte 0,
    one dtype, one dimension. ``nbytes`` is the body length that layout needs."""

    dtype: np.dtype[Any]
    dim: int
    nbytes: int
    prompt_tokens: int
    model: str | None


@functools.lru_cache(maxsize=64)
def _expected_items(n: int, embed_dtype: str, endianness: str, dim: int, itemsize: int) -> str:
    """The ``data`` list vLLM writes (``json.dumps`` defaults) for the common layout."""
    row = dim * itemsize
    return (
        "["
        + ", ".join(
            f'{{"index": {i}, "embed_dtype": "{embed_dtype}", "endianness": "{endianness}", '
            f'"start": {i * row}, "end": {(i + 1) * row}, "shape": [{dim}]}}'
            for i in range(n)
        )
        + "]"
    )


_raw_decode = json.JSONDecoder().raw_decode


def _value_after(header: str, key: str) -> Any:
    i = header.find(key)
    if i < 0:
        return None
    try:
        return _raw_decode(header, i + len(key))[0]
    except ValueError:
        return None


def quick_layout(header: str, n_inputs: int) -> Layout | None:
    """Read a vLLM metadata header without parsing every item, or None.

    Parsing the per-item list costs more than the rest of a response; in the common case
    the list is exactly what vLLM writes for ``n`` contiguous items, so it is compared as
    one string (cached per shape) and only ``usage`` and ``model`` are parsed. Anything
    unexpected returns None and the caller parses the header in full.
    """
    i = header.find('"data": [')
    if i < 0 or n_inputs < 1:
        return None
    j = header.find("}", i)
    try:
        first = json.loads(header[i + 9 : j + 1])
    except ValueError:
        return None
    if not isinstance(first, dict) or first.get("index") != 0 or first.get("start") != 0:
        return None
    name, order, shape = first.get("embed_dtype"), first.get("endianness"), first.get("shape")
    dtype = _DTYPES.get((name, order)) if isinstance(name, str) and isinstance(order, str) else None
    if dtype is None or not isinstance(shape, list) or len(shape) != 1:
        return None
    dim = shape[0]
    if not isinstance(dim, int) or dim < 1:
        return None
    assert isinstance(name, str) and isinstance(order, str)
    if not header.startswith(_expected_items(n_inputs, name, order, dim, dtype.itemsize), i + 8):
        return None
    usage = _value_after(header, '"usage": ')
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    model = _value_after(header, '"model": ')
    return Layout(
        dtype=dtype,
        dim=dim,
        nbytes=n_inputs * dim * dtype.itemsize,
        prompt_tokens=tokens if isinstance(tokens, int) else 0,
        model=model if isinstance(model, str) else None,
    )


def direct_layout(content_type: str, metadata_header: str | None, n_inputs: int) -> Layout | None:
    """The layout of a ``bytes`` answer whose body can be read straight into float32 rows
    (vLLM's usual layout, little-endian float32), or None: then read the body whole and
    :func:`decode_response` it. Transports call this once the headers are in."""
    if metadata_header is None or "json" in content_type:
        return None
    layout = quick_layout(metadata_header, n_inputs)
    return layout if layout is not None and layout.dtype == _LE_F4 else None


def _decode_bytes(content: bytes, header: str, n_inputs: int, url: str) -> Decoded:
    layout = quick_layout(header, n_inputs)
    if layout is not None and len(content) == layout.nbytes:
        vectors = np.frombuffer(content, dtype=layout.dtype).reshape(n_inputs, layout.dim)
        return Decoded(vectors, "bytes", layout.prompt_tokens, layout.model)
    try:
        meta = json.loads(header)
        items: list[dict[str, Any]] = meta["data"] if isinstance(meta, dict) else meta
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(url, "unreadable metadata header") from exc
    if len(items) != n_inputs:
        raise _bad(url, f"{len(items)} vectors for {n_inputs} inputs")
    usage = meta.get("usage") if isinstance(meta, dict) else None
    prompt_tokens = int(usage.get("prompt_tokens", 0)) if isinstance(usage, dict) else 0
    model = meta.get("model") if isinstance(meta, dict) else None
    if n_inputs == 0:
        return Decoded(np.empty((0, 0), np.float32), "bytes", prompt_tokens, model)
    try:
        first = items[0]
        dtype = _DTYPES[(first.get("embed_dtype", "float32"), first.get("endianness", "little"))]
        dim = int(np.prod(first["shape"])) if "shape" in first else None
        fast = _fast_path(content, items, dtype, dim)
        vectors = fast if fast is not None else _slow_path(content, items, dtype, n_inputs)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _bad(url, f"inconsistent binary metadata: {exc}") from exc
    return Decoded(vectors, "bytes", prompt_tokens, model if isinstance(model, str) else None)


def _fast_path(
    content: bytes, items: list[dict[str, Any]], dtype: np.dtype[Any], dim: int | None
) -> npt.NDArray[Any] | None:
    """One frombuffer when the items are in index order, contiguous and of equal shape."""
    n = len(items)
    if dim is None:
        return None
    row = dim * dtype.itemsize
    start = int(items[0]["start"])
    last = items[-1]
    # Cheap checks on the ends; the full check below is one pass over small dicts.
    if int(last["end"]) - start != n * row:
        return None
    for i, it in enumerate(items):
        if it["index"] != i or it["start"] != start + i * row:
            return None
    if items[-1].get("embed_dtype", "float32") != items[0].get("embed_dtype", "float32"):
        return None
    return np.frombuffer(content, dtype=dtype, count=n * dim, offset=start).reshape(n, dim)


def _slow_path(
    content: bytes, items: list[dict[str, Any]], dtype0: np.dtype[Any], n: int
) -> npt.NDArray[Any]:
    """Items out of order, with gaps or mixed dtypes: one frombuffer per item."""
    rows: list[npt.NDArray[Any] | None] = [None] * n
    view = memoryview(content)
    for it in items:
        dtype = _DTYPES[(it.get("embed_dtype", "float32"), it.get("endianness", "little"))]
        s, e = int(it["start"]), int(it["end"])
        row = np.frombuffer(view[s:e], dtype=dtype)
        if "shape" in it and row.size != int(np.prod(it["shape"])):
            raise ValueError(f"item {it['index']} has {row.size} values, shape says {it['shape']}")
        rows[int(it["index"])] = row
    if any(r is None for r in rows):
        raise ValueError("missing index")
    return np.stack([r for r in rows if r is not None]).astype(dtype0.newbyteorder("="))


def _decode_json(doc: Any, n_inputs: int, url: str) -> Decoded:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _bad(url, "no 'data' list")
    data: list[dict[str, Any]] = doc["data"]
    if len(data) != n_inputs:
        raise _bad(url, f"{len(data)} vectors for {n_inputs} inputs")
    usage = doc.get("usage")
    prompt_tokens = int(usage.get("prompt_tokens") or 0) if isinstance(usage, dict) else 0
    model = doc.get("model") if isinstance(doc.get("model"), str) else None
    if n_inputs == 0:
        return Decoded(np.empty((0, 0), np.float32), "float", prompt_tokens, model)
    # Servers may return items out of order: "index" says where each belongs.
    if any(item.get("index", i) != i for i, item in enumerate(data)):
        data = sorted(data, key=lambda item: item.get("index", 0))
    try:
        first = data[0]["embedding"]
        if isinstance(first, str):
            raw = b"".join([base64.b64decode(item["embedding"]) for item in data])
            vectors = np.frombuffer(raw, dtype=_LE_F4).reshape(n_inputs, -1)
            encoding = "base64"
        else:
            vectors = np.array([item["embedding"] for item in data], dtype=np.float32)
            if vectors.ndim != 2:
                raise ValueError("ragged vectors")
            encoding = "float"
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise _bad(url, f"bad 'embedding' items: {exc}") from exc
    return Decoded(vectors, encoding, prompt_tokens, model)


def parse_error_body(content: bytes) -> Any:
    """An error body as JSON when possible, else text (for error messages)."""
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")
