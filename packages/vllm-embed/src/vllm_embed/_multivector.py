"""Multi-vector (late interaction, ColBERT-style): ``/pooling`` with ``task: token_embed``.

A server started with ``--pooler-config '{"task": "token_embed"}'`` answers one vector per
token for each input. Those answers are tens to hundreds of KB per text, so the binary
``bytes`` encoding is asked first (one body, a ``metadata`` header giving each item's
``start``, ``end`` and ``shape``: one ``np.frombuffer`` per item), then ``base64`` (a flat
float32 string per item; its width comes from an earlier answer, or from a ``float``
answer asked once), then ``float`` (nested JSON lists). ``bytes_only`` is never asked: it
carries no per-item shapes. The negotiation is remembered per endpoint (a rejected
encoding is not asked again). Batches hold at most :data:`MAX_BATCH` texts: each answer is
already large (128 tokens x 384 dims is 196 KB a text), and the ``bytes`` metadata header
(about 120 bytes an item) then stays under the 4 KB header buffer of a default nginx or
ingress-nginx.

:func:`maxsim` scores late-interaction documents against a query: for each query token
the best dot product over the document's tokens, summed (what vLLM's own ``/rerank`` and
``/score`` compute on such a server).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import APIError, InvalidInputError, VectorWidthError
from vllm_embed._http_errors import error_from_response
from vllm_embed._wire import EncodingState, parse_error_body, rejects_encoding

__all__ = ["MAX_BATCH", "MULTIVECTOR_ENCODINGS", "MultiVectorState", "maxsim", "multivector_steps"]

#: The encodings a multi-vector answer can come in, cheapest first.
MULTIVECTOR_ENCODINGS = ("bytes", "base64", "float")
#: Texts per multi-vector request at most (see the module docstring).
MAX_BATCH = 16
F32 = npt.NDArray[np.float32]
_DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class MultiVectorState:
    """Per endpoint: the encodings still to try; per client: the vector width seen."""

    def __init__(self, preference: Sequence[str] = MULTIVECTOR_ENCODINGS) -> None:
        self._preference = tuple(p for p in preference if p in MULTIVECTOR_ENCODINGS)
        self._states: dict[str, EncodingState] = {}
        self._lock = threading.Lock()
        self.dim: int | None = None

    def encoding(self, base_url: str) -> EncodingState:
        state = self._states.get(base_url)
        if state is None:
            with self._lock:
                state = self._states.setdefault(
                    base_url, EncodingState(self._preference or ("float",))
                )
        return state


def _bad(url: str, why: str) -> APIError:
    return APIError(
        f"The server at {url} sent a /pooling answer the client cannot read ({why}). "
        'Is it a vLLM server started with --pooler-config \'{"task": "token_embed"}\'?',
        url=url,
    )


def body(
    model: str, inputs: Sequence[str], encoding: str, embed_dtype: str, tpt: int | None
) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "input": list(inputs),
        "task": "token_embed",
        "encoding_format": encoding,
    }
    if encoding == "bytes":
        payload["endianness"] = "little"
        if embed_dtype != "float32":
            payload["embed_dtype"] = embed_dtype
    if tpt is not None:
        payload["truncate_prompt_tokens"] = tpt
        payload["truncation_side"] = "right"
    return _json_encode(payload).encode("utf-8")


def decode(
    content: bytes, headers: Any, n: int, dim: int | None, url: str
) -> tuple[list[F32], str, int]:
    """(one ``(tokens, dim)`` float32 array per input, the encoding, prompt tokens)."""
    meta = headers.get("metadata")
    if meta is not None and "json" not in headers.get("content-type", ""):
        return _decode_bytes(content, meta, n, url)
    try:
        doc = json.loads(content)
        items = sorted(doc["data"], key=lambda item: item.get("index", 0))
        usage = doc.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _bad(url, f"no data list: {exc}") from exc
    if len(items) != n:
        raise _bad(url, f"{len(items)} items for {n} inputs")
    out: list[F32] = []
    try:
        if items and isinstance(items[0]["data"], str):
            if dim is None:
                raise _bad(url, "base64 rows of unknown width")
            for item in items:
                raw = np.frombuffer(base64.b64decode(item["data"]), dtype="<f4")
                if raw.size % dim:
                    raise _bad(url, f"{raw.size} values are not rows of {dim}")
                out.append(raw.reshape(-1, dim))
            return out, "base64", tokens
        for item in items:
            rows = np.asarray(item["data"], dtype=np.float32)
            if rows.ndim != 2:
                raise _bad(url, "an item is not a list of per-token vectors")
            out.append(rows)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise _bad(url, f"bad item: {exc}") from exc
    return out, "float", tokens


def _decode_bytes(content: bytes, header: str, n: int, url: str) -> tuple[list[F32], str, int]:
    try:
        meta = json.loads(header)
        items = sorted(meta["data"], key=lambda item: item["index"])
        usage = meta.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0)
        if len(items) != n:
            raise ValueError(f"{len(items)} items for {n} inputs")
        out: list[F32] = []
        view = memoryview(content)
        for item in items:
            dtype = _DTYPES[item.get("embed_dtype", "float32")]
            if item.get("endianness", "little") == "big":
                dtype = dtype.newbyteorder(">")
            shape = tuple(int(x) for x in item["shape"])
            rows = np.frombuffer(view[int(item["start"]) : int(item["end"])], dtype=dtype)
            out.append(rows.reshape(shape).astype(np.float32, copy=dtype != np.dtype("<f4")))
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(url, f"inconsistent binary metadata: {exc}") from exc
    return out, "bytes", tokens


def multivector_steps(
    post: Any,
    state: MultiVectorState,
    model: str,
    inputs: Sequence[str],
    tpt: int | None,
    embed_dtype: str,
) -> Generator[Any, Any, tuple[list[F32], int]]:
    """One batch: ``(rows per input, prompt tokens)``; encodings negotiated per endpoint."""
    n = len(inputs)
    asked: dict[str, str] = {}

    def request_for(ep: Any) -> tuple[str, bytes]:
        encoding = state.encoding(ep.base_url).current(ep.display_url, n)
        if encoding == "base64" and state.dim is None:
            encoding = "float"  # learn the width once; base64 rows carry no shape
        asked[ep.base_url] = encoding
        return ep.root_url + "/pooling", body(model, inputs, encoding, embed_dtype, tpt)

    for _ in range(2 * len(MULTIVECTOR_ENCODINGS) + 2):
        ep, reply = yield from post(request_for)
        encoding = asked[ep.base_url]
        enc_state = state.encoding(ep.base_url)
        if reply.status == 200:
            if enc_state.suspended:
                enc_state.confirm()
            rows, answered, tokens = decode(
                reply.content, reply.headers, n, state.dim, ep.display_url
            )
            if answered != encoding and encoding != "float":
                enc_state.reject(encoding)  # ignored encoding_format
            widths = {int(r.shape[1]) for r in rows}
            if len(widths) > 1 or (state.dim is not None and widths != {state.dim}):
                raise VectorWidthError(
                    f"{ep.display_url} returned token vectors {sorted(widths)} wide where "
                    f"{state.dim} was expected; nothing was cached.",
                    url=ep.display_url,
                )
            state.dim = widths.pop() if widths else state.dim
            return rows, tokens
        parsed = parse_error_body(reply.content)
        if rejects_encoding(reply.status, parsed, encoding):
            enc_state.reject(encoding)
            enc_state.current(ep.display_url, n)
            continue
        raise error_from_response(
            reply.status,
            parsed,
            url=ep.display_url,
            request_id=reply.headers.get("x-request-id"),
            model=model,
        )
    raise RuntimeError("multi-vector negotiation did not settle")  # pragma: no cover


def maxsim(query: npt.ArrayLike, documents: Sequence[npt.ArrayLike]) -> F32:
    """Late-interaction scores: for each document, the sum over the query's token vectors
    of the best dot product with the document's token vectors (ColBERT's MaxSim).

    ``query`` is ``(q_tokens, dim)``; each document ``(d_tokens, dim)``. Returns one
    float32 score per document. Rows are used as given (vLLM's token_embed rows are
    already L2-normalised, so dot products are cosines).
    """
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 2:
        raise InvalidInputError(f"maxsim() takes the query as (tokens, dim), got {q.shape}")
    scores = np.empty(len(documents), dtype=np.float32)
    for i, doc in enumerate(documents):
        d = np.asarray(doc, dtype=np.float32)
        if d.ndim != 2 or d.shape[1] != q.shape[1]:
            raise InvalidInputError(
                f"document {i} is {d.shape}; expected (tokens, {q.shape[1]}) like the query"
            )
        scores[i] = float((q @ d.T).max(axis=1).sum()) if len(d) else 0.0
    return scores
