"""EmbeddingCache (what users open) and ClientCache (what one client does with it).

Values are the vector's raw little-endian bytes (float32, or float16 when asked), never
JSON, so a batch of hits is one ``bytearray.join`` and one numpy view. Whether the server
truncated the input is kept beside the value (a SQLite column, a Redis set).

Writes go to the backend from one background thread per cache (write-behind), so storing
misses adds almost nothing to an embed call; entries still being written are answered
from memory. ``strict=True`` caches write synchronously (so a failure raises in the call).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from vllm_embed._cache._keys import SPACE_PREFIX_LEN, CacheKeySpace, text_keys
from vllm_embed._cache._sqlite import SQLiteBackend
from vllm_embed._errors import CacheError, ConfigValueError
from vllm_embed._types import EmbedResult

if TYPE_CHECKING:
    from vllm_embed._cache._redis import RedisBackend
    from vllm_embed._types import ClientStats

__all__ = ["DEFAULT_MAX_BYTES", "CacheWarning", "ClientCache", "EmbeddingCache", "Lookup"]

#: Default size limit of a SQLite cache (least recently used entries go first).
DEFAULT_MAX_BYTES = 2 * 1024**3
CacheDType = Literal["float32", "float16"]
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Probes at least this similar (cosine) are the same model.
_SAME_MODEL_COSINE = 0.9999
#: One entry to store: (key, raw vector bytes, the server truncated the input).
Item = tuple[bytes, bytes, bool]
#: Write-behind batches that may wait; a full queue makes the caller wait (bounded memory).
_MAX_PENDING_BATCHES = 64


class CacheWarning(UserWarning):
    """The embedding cache failed and the call went to the server without it."""


class EmbeddingCache:
    """A per-text embedding cache: SQLite (a path) by default, Redis when shared.

    >>> cache = EmbeddingCache("~/.cache/my-app/embeddings.sqlite", max_bytes=1 << 30)
    >>> client = EmbeddingClient("http://localhost:8000/v1", cache=cache)

    Args:
        location: A file path or ``sqlite:///path`` (a directory gets
            ``embeddings.sqlite`` inside it), or ``redis://host:port/db`` /
            ``rediss://...`` (needs ``pip install 'vllm-embed[redis]'``).
        max_bytes: SQLite only: size limit; least recently used entries are evicted
            (default 2 GiB; ``None``: no limit).
        ttl: Redis only: seconds an entry lives (default: until Redis evicts it).
        dtype: ``"float32"`` (default) or ``"float16"`` (half the size; results are still
            float32 arrays).
        namespace: Keeps apps that share one cache apart (part of every key).
        strict: Raise :class:`~vllm_embed.CacheUnavailableError` when the cache fails,
            instead of embedding without it (one :class:`CacheWarning`).

    A damaged SQLite file raises :class:`~vllm_embed.CacheCorruptError` saying how to
    clear it. One cache object may serve several clients and threads.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        ttl: float | None = None,
        dtype: CacheDType = "float32",
        namespace: str = "",
        strict: bool = False,
        busy_timeout: float = 2.0,
    ) -> None:
        if dtype not in ("float32", "float16"):
            raise ConfigValueError(f"cache dtype must be 'float32' or 'float16', got {dtype!r}")
        if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 1):
            raise ConfigValueError(f"cache max_bytes must be positive or None, got {max_bytes!r}")
        if ttl is not None and ttl <= 0:
            raise ConfigValueError(f"cache ttl must be positive seconds or None, got {ttl!r}")
        if not isinstance(namespace, str):
            raise ConfigValueError("cache namespace must be a string")
        self.dtype: CacheDType = dtype
        self.namespace = namespace
        # to reopen in another process (pickling an adapter); never shown anywhere
        self._reopen = (
            location,
            {
                "max_bytes": max_bytes,
                "ttl": ttl,
                "dtype": dtype,
                "namespace": namespace,
                "strict": strict,
                "busy_timeout": busy_timeout,
            },
        )
        self.strict = bool(strict)
        spec = os.fspath(location)
        if not isinstance(spec, str) or not spec:
            raise ConfigValueError(f"cache must be a path or a redis:// URL, got {location!r}")
        self.backend: SQLiteBackend | RedisBackend
        if spec.startswith(_REDIS_SCHEMES):
            from vllm_embed._cache._redis import RedisBackend

            self.backend = RedisBackend(spec, ttl=ttl, namespace=namespace)
        elif "://" in spec and not spec.startswith("sqlite:///"):
            scheme = spec.split("://", 1)[0]
            raise ConfigValueError(
                f"cache={scheme}://... is not a cache this version knows: use a file path, "
                "sqlite:///path, redis://host:port/db or rediss://..."
            )
        else:
            path = spec[len("sqlite:///") :] if spec.startswith("sqlite:///") else spec
            self.backend = SQLiteBackend(path, max_bytes=max_bytes, busy_timeout=busy_timeout)
            if strict:
                self.backend.ensure_ready()
        self.location = self.backend.location
        self.kind = self.backend.kind
        self._pending: dict[bytes, tuple[bytes, bool]] = {}
        self._pending_lock = threading.Lock()
        self._queue: queue.Queue[list[Item] | None] | None = None
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._write_errors: list[CacheError] = []
        self._closed = False

    # ------------------------------------------------------------------ reads and writes
    def read(self, keys: list[bytes]) -> tuple[list[bytes | None], set[bytes]]:
        """One lookup round: the values (None: absent) and the keys of truncated inputs.
        Entries still being written come from memory."""
        # Look at the pending entries BEFORE the backend: the writer thread commits an
        # entry and only then drops it from ``_pending``, so an entry absent here is
        # either never written or already committed (and the backend read finds it).
        # The other order could miss an entry committed between the two looks.
        from_memory: list[tuple[int, tuple[bytes, bool]]] = []
        if self._pending:
            with self._pending_lock:
                pending = self._pending
                for i, key in enumerate(keys):
                    found = pending.get(key)
                    if found is not None:
                        from_memory.append((i, found))
        values, cut = self.backend.get_many(keys)
        for i, (value, truncated) in from_memory:
            if values[i] is None:
                values[i] = value
                if truncated:
                    cut.add(keys[i])
        return values, cut

    def write(self, items: list[Item]) -> None:
        """Store entries: in the background (or now, for ``strict`` caches)."""
        if self.strict or self._closed:
            self.backend.put_many(items)
            return
        with self._pending_lock:
            self._pending.update((k, (v, t)) for k, v, t in items)
        self._writer_queue().put(items)

    def _writer_queue(self) -> queue.Queue[list[Item] | None]:
        pid = os.getpid()
        if self._queue is None or self._writer_pid != pid:
            with self._pending_lock:
                if self._queue is None or self._writer_pid != pid:
                    q: queue.Queue[list[Item] | None] = queue.Queue(_MAX_PENDING_BATCHES)
                    thread = threading.Thread(
                        target=_write_loop,
                        args=(weakref.ref(self), q),
                        name="vllm-embed-cache-writer",
                        daemon=True,
                    )
                    self._queue, self._writer, self._writer_pid = q, thread, pid
                    thread.start()
                    _LIVE.add(self)
        return self._queue

    def _written(self, items: list[Item], error: CacheError | None) -> None:
        with self._pending_lock:
            pending = self._pending
            for key, value, _ in items:
                entry = pending.get(key)
                if entry is not None and entry[0] is value:
                    del pending[key]
            if error is not None:
                self._write_errors.append(error)

    def take_write_errors(self) -> list[CacheError]:
        """Failures of background writes since the last call (reported by the clients)."""
        if not self._write_errors:
            return []
        with self._pending_lock:
            errors, self._write_errors = self._write_errors, []
        return errors

    def flush(self) -> None:
        """Wait until every entry given so far is written."""
        q = self._queue
        if q is not None and self._writer_pid == os.getpid():
            q.join()

    @classmethod
    def coerce(
        cls, value: EmbeddingCache | str | os.PathLike[str] | None
    ) -> tuple[EmbeddingCache | None, bool]:
        """``(cache, owned)`` from a client's ``cache=`` argument (owned: opened here)."""
        if value is None or value == "":
            return None, False
        if isinstance(value, EmbeddingCache):
            return value, False
        if isinstance(value, str | os.PathLike):
            return cls(value), True
        raise ConfigValueError(
            "cache must be a path, sqlite:///path, redis://host:port/db or an "
            f"EmbeddingCache, got {type(value).__name__}"
        )

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "float16" else 4

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.location!r}, dtype={self.dtype!r})"

    def __copy__(self) -> EmbeddingCache:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> EmbeddingCache:
        """Copies are this cache (it holds connections and a writer thread)."""
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Unpickled (e.g. in a worker process), the cache is opened again there."""
        location, options = self._reopen
        return (_reopen, (location, options))

    # ------------------------------------------------------------------ admin
    def stats(self) -> dict[str, Any]:
        """Entries and bytes, in all and per model (after pending writes)."""
        self.flush()
        return self.backend.stats()

    def clear(self, model: str | None = None) -> int:
        """Delete every entry (or those of one served model id); returns how many."""
        self.flush()
        return self.backend.clear(model)

    def close(self) -> None:
        """Write what is pending, then close the connections. Idempotent."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        q = self._queue
        if q is not None and self._writer_pid == os.getpid():
            q.put(None)
            if self._writer is not None:
                self._writer.join(timeout=30)
        _LIVE.discard(self)
        self.backend.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ model identity
    def generation(self, space: CacheKeySpace, probe: npt.NDArray[np.float32]) -> int:
        """The generation of the model behind these settings, judged by its probe vector.

        The first probe for these settings starts generation 0; a probe of another
        dimension or direction than the latest recorded one starts the next generation.
        """
        settings = space.settings_digest()
        vec = np.ascontiguousarray(probe, dtype="<f4").reshape(-1)
        for _ in range(3):
            record = self.backend.fingerprint(settings)
            if record is None:
                self.backend.add_fingerprint(settings, 0, space.model, vec.tobytes())
                continue  # re-read: another process may have won the race
            gen, stored_bytes = record
            if _same_model(np.frombuffer(stored_bytes, dtype="<f4"), vec):
                return gen
            self.backend.add_fingerprint(settings, gen + 1, space.model, vec.tobytes())
        record = self.backend.fingerprint(settings)
        return 0 if record is None else record[0]


def _reopen(location: str | os.PathLike[str], options: dict[str, Any]) -> EmbeddingCache:
    return EmbeddingCache(location, **options)


def _write_loop(ref: weakref.ref[EmbeddingCache], q: queue.Queue[list[Item] | None]) -> None:
    while True:
        items = q.get()
        try:
            if items is None:
                return
            cache = ref()
            if cache is None:
                return
            error: CacheError | None = None
            try:
                cache.backend.put_many(items)
            except CacheError as exc:
                error = exc
            cache._written(items, error)
            del cache
        finally:
            q.task_done()


_LIVE: weakref.WeakSet[EmbeddingCache] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:  # pragma: no cover - runs at interpreter exit
    for cache in list(_LIVE):
        with contextlib.suppress(Exception):
            cache.flush()


def _same_model(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> bool:
    if a.shape != b.shape:
        return False
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return bool(np.allclose(a, b))
    return float(np.dot(a, b)) / (na * nb) >= _SAME_MODEL_COSINE


@dataclass
class Lookup:
    """The cache's answer for one batch: hits decoded, unique misses to embed."""

    n: int
    dim: int
    dtype: str
    keys: list[bytes]
    hit_positions: list[int] = field(default_factory=list)
    hit_values: list[bytes] = field(default_factory=list)
    hit_cut: list[int] = field(default_factory=list)
    #: the unique texts to embed, and for each input position not hit its index in them
    miss_texts: list[str] = field(default_factory=list)
    miss_keys: list[bytes] = field(default_factory=list)
    miss_positions: list[int] = field(default_factory=list)
    miss_slots: list[int] = field(default_factory=list)

    def assemble(self, miss: EmbedResult | None, model: str) -> EmbedResult:
        """Hits and the embedded misses back in input order."""
        dim = self.dim
        out = np.empty((self.n, dim), dtype=np.float32)
        truncated: list[int] = []
        if self.hit_positions:
            # one copy into a writable buffer, viewed as the vectors
            block = np.frombuffer(bytearray().join(self.hit_values), dtype=self.dtype)
            block = block.reshape(len(self.hit_values), dim)
            if len(self.hit_positions) == self.n and block.dtype == np.float32:
                out = block
            elif len(self.hit_positions) == self.n:
                out[:] = block
            else:
                out[np.asarray(self.hit_positions, dtype=np.intp)] = block
            truncated.extend(self.hit_cut)
        prompt_tokens, exact = 0, True
        if miss is not None and self.miss_positions:
            out[np.asarray(self.miss_positions, dtype=np.intp)] = miss.vectors[
                np.asarray(self.miss_slots, dtype=np.intp)
            ]
            cut = set(miss.truncated_indices)
            truncated.extend(
                p for p, s in zip(self.miss_positions, self.miss_slots, strict=True) if s in cut
            )
            prompt_tokens, exact = miss.prompt_tokens, miss.truncation_exact
            model = miss.model or model
        truncated.sort()
        return EmbedResult(
            vectors=out,
            truncated=len(truncated),
            truncated_indices=truncated,
            prompt_tokens=prompt_tokens,
            model=model,
            truncation_exact=exact,
        )


class ClientCache:
    """What one client does with an :class:`EmbeddingCache`: probes the model once per
    settings, looks batches up in one round, stores misses, and never lets a failing cache
    fail the call (unless ``strict``)."""

    #: Seconds a failed cache is left alone before it is tried again.
    retry_after = 5.0

    def __init__(self, cache: EmbeddingCache, stats: ClientStats, *, owned: bool) -> None:
        self.cache = cache
        self.stats = stats
        self.owned = owned
        self._generations: dict[bytes, tuple[int, int]] = {}  # settings -> (generation, dim)
        self._registered: set[bytes] = set()
        self._down_until = 0.0
        self._warned = False

    def close(self) -> None:
        if self.owned:
            self.cache.close()

    # ------------------------------------------------------------------ failures
    def _failed(self, exc: CacheError) -> None:
        self.stats.add(cache_errors=1)
        if self.cache.strict:
            raise exc
        self._down_until = time.monotonic() + self.retry_after
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{exc} Embedding without the cache for now (counted in "
                "client.stats.cache_errors; strict=True raises instead).",
                CacheWarning,
                stacklevel=4,
            )

    def _worked(self) -> None:
        self._warned = False

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    # ------------------------------------------------------------------ model identity
    def needs_probe(self, space: CacheKeySpace) -> bool:
        """True when these settings have not been checked against the server yet."""
        return self._available() and space.settings_digest() not in self._generations

    def adopt_probe(self, space: CacheKeySpace, probe: npt.NDArray[np.float32]) -> None:
        """Record which generation of the model the server runs (from the probe vector)."""
        try:
            gen = self.cache.generation(space, probe)
        except CacheError as exc:
            self._failed(exc)
            return
        self._generations[space.settings_digest()] = (gen, int(np.asarray(probe).shape[-1]))

    def forget_model(self) -> None:
        """The server's vectors changed under this client: probe again on the next call."""
        self._generations.clear()

    # ------------------------------------------------------------------ one batch
    def lookup(self, space: CacheKeySpace, items: Sequence[str]) -> Lookup | None:
        """One lookup round for the batch; None when the cache cannot be used now."""
        known = self._generations.get(space.settings_digest())
        if known is None or not self._available():
            return None
        gen, dim = known
        full = space.with_generation(gen)
        digest = full.digest()
        keys = text_keys(digest, list(items))
        try:
            prefix = digest[:SPACE_PREFIX_LEN]
            if prefix not in self._registered:
                self.cache.backend.register_space(prefix, full.model, full.describe())
                self._registered.add(prefix)
            for error in self.cache.take_write_errors():
                raise error
            raw, cut = self.cache.read(keys)
        except CacheError as exc:
            self._failed(exc)
            return None
        self._worked()
        width = dim * self.cache.itemsize
        lookup = Lookup(
            n=len(keys), dim=dim, dtype="<f2" if self.cache.dtype == "float16" else "<f4", keys=keys
        )
        if None not in raw and set(map(len, raw)) == {width}:  # type: ignore[arg-type]
            # all hits (the common case of a warm cache): no per-text bookkeeping
            lookup.hit_positions = list(range(len(keys)))
            lookup.hit_values = raw  # type: ignore[assignment]
            read = width * len(raw)
        else:
            read = self._sort(lookup, items, raw, width)
        if cut:
            lookup.hit_cut = [p for p in lookup.hit_positions if lookup.keys[p] in cut]
        self.stats.add(
            cache_hits=len(lookup.hit_positions),
            cache_misses=len(lookup.miss_texts),
            cache_bytes_read=read,
        )
        return lookup

    @staticmethod
    def _sort(lookup: Lookup, items: Sequence[str], raw: list[bytes | None], width: int) -> int:
        """Split the batch into hits and unique misses; returns the bytes read."""
        first: dict[bytes, int] = {}
        read = 0
        for i, (key, value) in enumerate(zip(lookup.keys, raw, strict=True)):
            if value is not None and len(value) == width:
                lookup.hit_positions.append(i)
                lookup.hit_values.append(value)
                read += width
                continue
            slot = first.get(key)
            if slot is None:
                slot = first[key] = len(lookup.miss_texts)
                lookup.miss_texts.append(items[i])
                lookup.miss_keys.append(key)
            lookup.miss_positions.append(i)
            lookup.miss_slots.append(slot)
        return read

    def store(self, lookup: Lookup, miss: EmbedResult) -> bool:
        """Write the embedded misses. False when their dimension is not the probe's (the
        model changed under the client): the caller re-embeds without the cache."""
        vectors = miss.vectors
        if vectors.shape[1] != lookup.dim:
            self.forget_model()
            return False
        if not self._available() or not lookup.miss_keys:
            return True
        raw = np.ascontiguousarray(vectors, dtype=lookup.dtype).tobytes()
        width = len(raw) // len(lookup.miss_keys)
        cut = set(miss.truncated_indices)
        items = [
            (key, raw[j * width : (j + 1) * width], j in cut)
            for j, key in enumerate(lookup.miss_keys)
        ]
        try:
            self.cache.write(items)
        except CacheError as exc:
            self._failed(exc)
            return True
        self._worked()
        self.stats.add(cache_bytes_written=width * len(items))
        return True
