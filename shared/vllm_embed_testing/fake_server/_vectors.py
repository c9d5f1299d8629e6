"""The fake server's deterministic outputs: vectors, token vectors, chat text, token counts.

Shared by the server (child process) and the tests' own process, so a test computes the
exact float32 values the server sends. :class:`_Entry` caches one text's vector in every
wire encoding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

import numpy as np


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def fake_vector(text: str, dim: int, dimensions: int | None = None) -> np.ndarray:
    """The float32 vector the fake server returns for ``text`` (L2-normalised).

    ``dimensions`` gives the Matryoshka answer: the first ``dimensions`` values renormalised.
    A text the server truncated (``truncate_prompt_tokens``) is embedded as its kept words
    joined by single spaces: ``fake_vector(" ".join(text.split()[:kept]), dim)``.
    """
    rng = np.random.default_rng(_seed(text))
    vector = rng.standard_normal(dim, dtype=np.float32)
    if dimensions is not None:
        vector = vector[:dimensions]
    norm = np.float32(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32)


def fake_token_vectors(text: str, dim: int) -> np.ndarray:
    """The ``(tokens, dim)`` float32 rows a ``token_embed`` fake answers for ``text``: one
    L2-normalised row per token ([CLS], one per word, [SEP]), as vLLM's token_embed does."""
    words = text.split()
    tokens = ["[CLS]", *words, "[SEP]"]
    return np.stack([fake_vector(f"{text}\x00{i}:{t}", dim) for i, t in enumerate(tokens)])


def fake_chat_text(messages: Any, *, multimodal: bool = True) -> str:
    """The text the fake embeds for a conversation: ``role: text`` lines, an image part as
    ``<image:...>`` (the first 16 hex digits of its data's sha256, or of its URL)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    lines = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ValueError("each message needs a string or a list of parts as content")
        texts = []
        for part in parts:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                if not multimodal:
                    raise ValueError("fake-model is not a multimodal model")
                url = str(part.get("image_url", {}).get("url", ""))
                data = (
                    base64.b64decode(url.split(",", 1)[1])
                    if url.startswith("data:")
                    else url.encode()
                )
                texts.append(f"<image:{hashlib.sha256(data).hexdigest()[:16]}>")
            else:
                raise ValueError(f"unknown content part type {part.get('type')!r}")
        lines.append(f"{message.get('role')}: {' '.join(texts)}")
    return "\n".join(lines)


def fake_token_count(text: str, add_special_tokens: bool = True) -> int:
    """Tokens the fake server counts for ``text``: one per word (+2 special tokens)."""
    return len(text.split()) + (2 if add_special_tokens else 0)


def _fake_token_ids(text: str, add_special_tokens: bool = True) -> list[int]:
    ids = [1000 + _seed(word) % 28000 for word in text.split()]
    return [101, *ids, 102] if add_special_tokens else ids


class _Entry:
    """One text's vector in every encoding the server may send, computed on first use."""

    __slots__ = ("_b64", "_json", "_raw", "vector")

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector
        self._raw: dict[tuple[str, str], bytes] = {}
        self._b64: dict[tuple[str, str], bytes] = {}
        self._json: bytes | None = None

    def raw(self, dtype: str, endianness: str) -> bytes:
        key = (dtype, endianness)
        data = self._raw.get(key)
        if data is None:
            array = self.vector.astype(np.float16 if dtype == "float16" else np.float32)
            if endianness not in ("native", sys.byteorder):
                array = array.byteswap()
            data = self._raw[key] = array.tobytes()
        return data

    def b64(self, dtype: str, endianness: str) -> bytes:
        key = (dtype, endianness)
        data = self._b64.get(key)
        if data is None:
            data = self._b64[key] = base64.b64encode(self.raw(dtype, endianness))
        return data

    def floats(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.vector.tolist()).encode()
        return self._json
