"""The Redis cache backend (``pip install 'vllm-embed[redis]'``): shared by many machines.

Entries are plain string keys ``vllm-embed:1:<namespace>:v:<24-byte key>`` holding the
vector's raw bytes, read with one pipelined round per batch (``MGET`` + ``SMISMEMBER`` of
the set of truncated inputs) and written with one (``MSET``, or ``SET ... EX`` per entry
when a TTL is set). Eviction is Redis's own (``maxmemory-policy
allkeys-lru``) plus the optional TTL. Fingerprints and the space -> model table live
beside them, so ``vllm-embed cache clear URL --model M`` can find a model's entries.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from vllm_embed._cache._keys import SPACE_PREFIX_LEN
from vllm_embed._errors import CacheUnavailableError, ConfigValueError
from vllm_embed._secrets import mask_url

__all__ = ["RedisBackend"]

_CHUNK = 4096
_GEN = struct.Struct("<I")


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out.append(0x5C)
        out.append(b)
    return bytes(out)


class RedisBackend:
    """Cache entries in Redis (see the module docstring)."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl: float | None,
        namespace: str = "",
        timeout: float = 2.0,
        client: Any = None,
    ) -> None:
        self.location = mask_url(url)
        self.ttl = None if ttl is None else max(1, round(ttl))
        self.max_bytes = None
        if client is None:
            try:
                import redis
            except ImportError as exc:
                raise ConfigValueError(
                    f"cache={self.location!r} needs the redis package: "
                    "pip install 'vllm-embed[redis]'"
                ) from exc
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
        self._r = client
        self._prefix = b"vllm-embed:1:" + namespace.encode("utf-8") + b":"
        self._vprefix = self._prefix + b"v:"
        self._cut = self._prefix + b"truncated"  # keys of inputs the server truncated

    def unavailable_error(self, exc: BaseException) -> CacheUnavailableError:
        return CacheUnavailableError(
            f"The Redis embedding cache at {self.location} could not be used "
            f"({type(exc).__name__}: {exc}). Is redis-server running and the URL right?",
            location=self.location,
        )

    def corrupt_error(self, exc: BaseException) -> CacheUnavailableError:
        return self.unavailable_error(exc)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise self.unavailable_error(exc) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection
            self._r.close()

    # ---------------------------------------------------------------- entries
    def get_many(self, keys: Sequence[bytes]) -> tuple[list[bytes | None], set[bytes]]:
        """One pipelined round: MGET of the values, SMISMEMBER of the truncated set."""
        vp = self._vprefix
        out: list[bytes | None] = []
        cut: set[bytes] = set()
        with self._errors():
            pipe = self._r.pipeline(transaction=False)
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                pipe.mget([vp + k for k in chunk])
                pipe.smismember(self._cut, chunk)
            answers = pipe.execute()
        for i, (values, flags) in enumerate(zip(answers[::2], answers[1::2], strict=True)):
            out.extend(values)
            chunk = keys[i * _CHUNK : (i + 1) * _CHUNK]
            cut.update(k for k, f in zip(chunk, flags, strict=True) if f)
        return out, cut

    def put_many(self, items: Sequence[tuple[bytes, bytes, bool]]) -> None:
        if not items:
            return
        vp = self._vprefix
        with self._errors():
            pipe = self._r.pipeline(transaction=False)
            if self.ttl is None:
                for i in range(0, len(items), _CHUNK):
                    pipe.mset({vp + k: v for k, v, _ in items[i : i + _CHUNK]})
            else:
                for k, v, _ in items:
                    pipe.set(vp + k, v, ex=self.ttl)
            cut = [k for k, _, t in items if t]
            if cut:
                pipe.sadd(self._cut, *cut)
            pipe.execute()

    # ---------------------------------------------------------------- spaces
    def register_space(self, prefix: bytes, model: str, description: str) -> None:
        with self._errors():
            self._r.hsetnx(self._prefix + b"spaces", prefix, model.encode("utf-8"))

    def fingerprint(self, settings: bytes) -> tuple[int, bytes] | None:
        with self._errors():
            raw = self._r.get(self._prefix + b"fp:" + settings)
        if not raw or len(raw) < _GEN.size:
            return None
        return _GEN.unpack_from(raw)[0], bytes(raw[_GEN.size :])

    def add_fingerprint(self, settings: bytes, generation: int, model: str, probe: bytes) -> None:
        with self._errors():
            pipe = self._r.pipeline(transaction=False)
            pipe.set(self._prefix + b"fp:" + settings, _GEN.pack(generation) + probe)
            pipe.hset(self._prefix + b"fpmodel", settings, model.encode("utf-8"))
            pipe.execute()

    # ---------------------------------------------------------------- admin
    def _scan(self, pattern: bytes) -> Iterator[bytes]:
        yield from self._r.scan_iter(match=pattern, count=1000)

    def stats(self) -> dict[str, Any]:
        with self._errors():
            names = {
                k: v.decode("utf-8", "replace")
                for k, v in self._r.hgetall(self._prefix + b"spaces").items()
            }
            models: dict[str, dict[str, int]] = {}
            entries = size = 0
            batch: list[bytes] = []

            def flush() -> None:
                nonlocal entries, size
                pipe = self._r.pipeline(transaction=False)
                for key in batch:
                    pipe.strlen(key)
                for key, n in zip(batch, pipe.execute(), strict=True):
                    prefix = key[len(self._vprefix) : len(self._vprefix) + SPACE_PREFIX_LEN]
                    slot = models.setdefault(
                        names.get(prefix, "(unknown)"), {"entries": 0, "bytes": 0}
                    )
                    slot["entries"] += 1
                    slot["bytes"] += int(n)
                    entries += 1
                    size += int(n)
                batch.clear()

            for key in self._scan(_glob_escape(self._vprefix) + b"*"):
                batch.append(key)
                if len(batch) >= 1000:
                    flush()
            if batch:
                flush()
            return {
                "backend": "redis",
                "location": self.location,
                "entries": entries,
                "value_bytes": size,
                "ttl": self.ttl,
                "models": models,
            }

    def clear(self, model: str | None = None) -> int:
        with self._errors():
            mine: list[bytes] = []
            if model is None:
                patterns = [_glob_escape(self._vprefix) + b"*"]
            else:
                spaces = self._r.hgetall(self._prefix + b"spaces")
                mine = [p for p, m in spaces.items() if m.decode("utf-8", "replace") == model]
                patterns = [_glob_escape(self._vprefix + p) + b"*" for p in mine]
            n = 0
            for pattern in patterns:
                batch: list[bytes] = []
                for key in self._scan(pattern):
                    batch.append(key)
                    if len(batch) >= 1000:
                        n += int(self._r.unlink(*batch))
                        batch = []
                if batch:
                    n += int(self._r.unlink(*batch))
            if model is not None:
                fps = self._r.hgetall(self._prefix + b"fpmodel")
                for settings, m in fps.items():
                    if m.decode("utf-8", "replace") == model:
                        self._r.delete(self._prefix + b"fp:" + settings)
                        self._r.hdel(self._prefix + b"fpmodel", settings)
                if mine:
                    self._r.hdel(self._prefix + b"spaces", *mine)
            else:
                meta = [b"spaces", b"fpmodel", b"truncated"]
                meta += [
                    k[len(self._prefix) :]
                    for k in self._scan(_glob_escape(self._prefix + b"fp:") + b"*")
                ]
                self._r.delete(*[self._prefix + m for m in meta])
            return n
