"""The wire format of ``/v1/embeddings``: encoding negotiation, request bodies, ONE decoder.

No I/O here: the transports (:mod:`vllm_embed._transports`) move bytes, this module says
what the bytes mean.

The cheapest encoding a server supports wins, in this order:

``bytes``   vLLM only: the body is the raw vectors (``application/octet-stream``) and a JSON
            ``metadata`` response header describes each item (``index, embed_dtype,
            endianness, start, end, shape``) plus ``usage``. Decoded with one
            ``np.frombuffer`` over the body: no per-element work in Python. The header grows
            by about 110 bytes a row: past a few dozen rows it overflows the one-page
            header buffer of a default nginx (502) or ingress-nginx.
``bytes_only``  vLLM only: the same body with no response header; the layout is implied by
            the request (row width = body length / n / itemsize). No ``usage`` comes back,
            so ``prompt_tokens`` counts 0 for these batches. Asked for behind a proxy that
            refused ``bytes``.
``base64``  OpenAI and vLLM: little-endian float32 per item, base64 in JSON.
``float``   everyone (TEI, Ollama, old vLLM): JSON lists of numbers.

A server "rejects" an encoding when it answers 400/422 with a body that mentions
``encoding_format``, or when it ignores the request and answers in another encoding.
A rejected encoding is never asked of that server again (:class:`EncodingState`).

A proxy between client and server can refuse to carry a binary answer (nginx: 502,
"upstream sent too big header"; 413 / 431 for its size limits). That is not the server
failing: the encoding is set aside for that endpoint and the batch is asked again at once
in the next encoding (:meth:`EncodingState.blocked`): ``bytes`` gives way to
``bytes_only`` where the server has it, else ``bytes`` is kept only for batches of at
most half the refused size (a small header) and larger ones go as ``base64``. If the next
encoding is refused with the same status too, the proxy was not the cause (the server
behind it is down): the encodings set aside are restored and the status goes through the
ordinary retries.
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
    "unframed_layout",
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

    ``candidates`` starts as the client's preference (``auto`` = bytes, bytes_only, base64,
    float) and only ever shrinks, except for encodings a proxy seemed to refuse
    (:meth:`blocked`), which come back if the next encoding is refused the same way.
    """

    def __init__(self, preference: Sequence[str]) -> None:
        self._candidates = list(preference)
        self._order = {name: i for i, name in enumerate(preference)}
        self._lock = threading.Lock()
        self.rejected: list[str] = []
        #: Encodings set aside because a proxy refused them, not yet confirmed.
        self._suspended: list[str] = []
        #: ``bytes`` is asked only for batches of at most this many rows (None: any).
        self.bytes_row_limit: int | None = None
        #: Proxy refusals seen (each one renegotiated at once, not retried).
        self.proxy_refusals = 0
        #: The batch size of the last ``bytes`` answer a proxy refused.
        self._refused_rows = 0

    @property
    def candidates(self) -> tuple[str, ...]:
        """Encodings not yet rejected, cheapest first."""
        return tuple(self._candidates)

    def current(self, url: str, n_rows: int = 1) -> str:
        """The encoding to ask for now (for a batch of ``n_rows``); raises when every
        candidate was rejected."""
        cands = self._candidates
        limit = self.bytes_row_limit
        for name in cands:
            if name == "bytes" and limit is not None and n_rows > limit:
                continue
            return name
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
            if encoding == "bytes_only" and "bytes" in self._suspended:
                # bytes was set aside for bytes_only, which this server lacks: keep bytes
                # for the batches whose header is small enough to pass.
                self._suspended.remove("bytes")
                self._limit_bytes(self._refused_rows)
                self._candidates.append("bytes")
                self._candidates.sort(key=lambda name: self._order.get(name, len(self._order)))

    def _limit_bytes(self, n_rows: int) -> None:
        limit = n_rows // 2
        if self.bytes_row_limit is None or limit < self.bytes_row_limit:
            self.bytes_row_limit = limit
        self._suspended.append(f"bytes<={limit}")

    def blocked(self, encoding: str, n_rows: int, url: str) -> bool:
        """A proxy refused ``encoding`` for a batch of ``n_rows``: set it aside (``bytes``
        without ``bytes_only`` to fall back on: only for batches above half that size) and
        return True when another encoding is left to try; False when there is none (the
        status is then the server's)."""
        with self._lock:
            if encoding not in C.BINARY_ENCODINGS or encoding not in self._candidates:
                return False
            self.proxy_refusals += 1
            if encoding == "bytes":
                self._refused_rows = n_rows
            if encoding == "bytes" and n_rows > 1 and "bytes_only" not in self._candidates:
                self._limit_bytes(n_rows)
            else:
                self._candidates.remove(encoding)
                self._suspended.append(encoding)
        try:
            self.current(url, n_rows)
        except EncodingNotSupportedError:
            self.restore()
            return False
        return True

    def confirm(self) -> None:
        """The encoding asked after a proxy refusal worked: the refusals were the proxy's."""
        with self._lock:
            for name in self._suspended:
                if not name.startswith("bytes<="):
                    self.rejected.append(name)
            self._suspended.clear()

    def restore(self) -> None:
        """The next encoding was refused the same way: the proxy was not the cause. Put
        back what :meth:`blocked` set aside."""
        with self._lock:
            for name in self._suspended:
                if name.startswith("bytes<="):
                    self.bytes_row_limit = None
                elif name not in self._candidates:
                    self._candidates.append(name)
            self._candidates.sort(key=lambda name: self._order.get(name, len(self._order)))
            self._suspended.clear()

    def set_aside(self, encoding: str, n_rows: int) -> bool:
        """True when ``encoding`` is no longer asked for batches of ``n_rows`` (a request
        sent before a refusal changed that, coming back refused too)."""
        if encoding in self._suspended or encoding in self.rejected:
            return True
        limit = self.bytes_row_limit
        return encoding == "bytes" and limit is not None and n_rows > limit

    @property
    def suspended(self) -> bool:
        """True while a proxy refusal awaits confirmation."""
        return bool(self._suspended)


def preference_for(setting: str) -> tuple[str, ...]:
    """The encodings to try for the client's ``encoding`` setting."""
    if setting == "auto":
        return C.ENCODING_PREFERENCE
    if setting in C.ENCODING_PREFERENCE:
        return (setting,)
    raise ValueError(
        f"encoding must be 'auto', 'bytes_only', 'bytes', 'base64' or 'float', got {setting!r}"
    )


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
    ``embed_dtype`` is only sent with the binary encodings (``bytes`` names the dtype of
    every item in its metadata; ``bytes_only`` answers in exactly the dtype asked).
    ``truncation_side`` goes with ``truncate_prompt_tokens`` (vLLM >= 0.11; a server
    that refuses either is asked again without both). ``normalize``, which newer vLLM
    rejects (replaced by ``use_activation``), is never sent: normalisation is left to
    the model's pooler, or done on the client.
    """
    payload: dict[str, Any] = {
        "model": model,
        "input": inputs if isinstance(inputs, list) else list(inputs),
        "encoding_format": encoding,
    }
    if encoding in C.BINARY_ENCODINGS:
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
    embed_dtype: str = "float32",
) -> Decoded:
    """Decode an embeddings response, whatever encoding the server actually chose.

    The answer is detected from the response itself (a ``metadata`` header plus a binary
    body means ``bytes``; a binary body alone means ``bytes_only``, rows of the
    ``embed_dtype`` asked; JSON items with strings mean ``base64``; lists mean ``float``),
    so a server that silently ignores ``encoding_format`` still decodes correctly; the
    caller compares :attr:`Decoded.encoding` with what it asked for.
    """
    if metadata_header is not None and "json" not in content_type:
        return _decode_bytes(content, metadata_header, n_inputs, url)
    if "octet-stream" in content_type:
        return _decode_unframed(content, n_inputs, embed_dtype, url)
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


def _unframed_dim(nbytes: int, n_inputs: int, itemsize: int) -> int | None:
    """The row width of a ``bytes_only`` body, or None when the length does not divide."""
    if n_inputs < 1 or nbytes <= 0 or nbytes % (n_inputs * itemsize):
        return None
    return nbytes // (n_inputs * itemsize)


def unframed_layout(
    content_type: str, metadata_header: str | None, content_length: str | None, n_inputs: int
) -> Layout | None:
    """The layout of a float32 ``bytes_only`` answer (a binary body, no metadata header):
    ``n_inputs`` rows back to back, their width given by the body length. None otherwise
    (then the body is read whole and :func:`decode_response` judges it)."""
    if metadata_header is not None or "octet-stream" not in content_type or not content_length:
        return None
    try:
        nbytes = int(content_length)
    except ValueError:
        return None
    dim = _unframed_dim(nbytes, n_inputs, 4)
    if dim is None:
        return None
    return Layout(dtype=_LE_F4, dim=dim, nbytes=nbytes, prompt_tokens=0, model=None)


def _decode_unframed(content: bytes, n_inputs: int, embed_dtype: str, url: str) -> Decoded:
    dtype = _DTYPES.get((embed_dtype, "little"))
    if dtype is None:
        raise _bad(url, f"binary body in unknown dtype {embed_dtype!r}")
    if n_inputs == 0:
        return Decoded(np.empty((0, 0), np.float32), "bytes_only", 0, None)
    dim = _unframed_dim(len(content), n_inputs, dtype.itemsize)
    if dim is None:
        raise _bad(
            url,
            f"a binary body of {len(content)} bytes is not {n_inputs} rows of {embed_dtype}",
        )
    vectors = np.frombuffer(content, dtype=dtype).reshape(n_inputs, dim)
    return Decoded(vectors, "bytes_only", 0, None)


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
