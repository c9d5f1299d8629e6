"""Cache keys: one hash over everything that changes a vector, then the text.

A key's space (:class:`CacheKeySpace`) is the client's embedding space
(:class:`~vllm_embed._space.ClientSpace`: the model id the server reports, the
instructions, ``dimensions`` and whether the client cuts them, normalisation, the
truncation policy and limit) plus what only the cache has: the role (which picks the
instruction), the transfer dtype, the cache's own storage dtype and namespace, and the
model's generation (see below). A key is
``space[:8] + blake2b(text, key=space)[:16]``: 24 bytes, the first 8 shared by the whole
space (so one space, or one model, can be cleared by prefix).

The *generation* catches a model served under the same name but changed: each client
embeds one probe text once, and a probe of another dimension or direction than the one
recorded for these settings starts a new generation, i.e. a new space. The API key is in
none of this.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from vllm_embed._space import ClientSpace

__all__ = ["PROBE_TEXT", "SPACE_PREFIX_LEN", "CacheKeySpace", "text_keys"]

#: Embedded once per client and settings to tell a changed model from the recorded one.
PROBE_TEXT = "vllm-embed cache probe: the quick brown fox jumps over the lazy dog. 0123456789"
#: Bytes of the space digest at the front of every key.
SPACE_PREFIX_LEN = 8
_TEXT_HASH_LEN = 16
_KEY_FORMAT = "vllm-embed-cache/1"


@dataclass(frozen=True)
class CacheKeySpace:
    """A client's embedding space plus the cache-only fields: what a key is hashed over.

    ``role`` is ``raw``, ``query``, ``document`` (each with its instruction) or
    ``messages`` (conversations: no instruction).
    """

    space: ClientSpace
    role: str = "raw"
    transfer_dtype: str = "float32"
    storage_dtype: str = "float32"
    namespace: str = ""
    generation: int = 0

    @property
    def model(self) -> str:
        return self.space.model

    @property
    def instruction(self) -> str:
        """The instruction the texts of this role get."""
        return self.space.instruction(self.role)

    def settings_digest(self) -> bytes:
        """The settings the probe depends on: all but role, instruction and generation."""
        space = self.space
        return _digest(
            [
                _KEY_FORMAT,
                "settings",
                space.model,
                space.dimensions,
                space.client_side_dimensions,
                space.normalize,
                space.truncate,
                space.limit,
                self.transfer_dtype,
                self.storage_dtype,
                self.namespace,
            ]
        )

    def digest(self) -> bytes:
        """The 32-byte digest of the whole space."""
        return _digest(
            [
                _KEY_FORMAT,
                "space",
                self.settings_digest().hex(),
                self.generation,
                self.role,
                self.instruction,
            ]
        )

    def with_generation(self, generation: int) -> CacheKeySpace:
        return replace(self, generation=generation)

    def describe(self) -> str:
        """A readable JSON line (what ``vllm-embed cache stats`` shows); no secrets."""
        space = self.space
        return json.dumps(
            {
                "model": space.model,
                "generation": self.generation,
                "role": self.role,
                "dimensions": space.dimensions,
                "normalize": space.normalize,
                "truncate": space.truncate,
                "limit": space.limit,
                "transfer_dtype": self.transfer_dtype,
                "storage_dtype": self.storage_dtype,
            },
            sort_keys=True,
        )


def _digest(parts: list[object]) -> bytes:
    text = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=32).digest()


def text_keys(space_digest: bytes, texts: list[str]) -> list[bytes]:
    """The cache key of each text in that space (24 bytes each)."""
    prefix = space_digest[:SPACE_PREFIX_LEN]
    blake = hashlib.blake2b
    return [
        prefix
        + blake(
            t.encode("utf-8", "surrogatepass"), digest_size=_TEXT_HASH_LEN, key=space_digest
        ).digest()
        for t in texts
    ]
