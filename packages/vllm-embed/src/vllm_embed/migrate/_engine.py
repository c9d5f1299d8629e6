"""The migration engine: embed in journaled chunks, assemble, verify, swap atomically.

Order of a run (each step only starts when the previous one succeeded):

1. Refuse records without text (before any request), unless they are dropped.
2. Fingerprint source + settings; resume the work dir of the same fingerprint or
   create one (refuse a work dir of another fingerprint).
3. Embed the chunks not yet journaled; each chunk's rows are fsynced, then journaled.
   Meanwhile a background thread (`_Assembler`) imports what the checks need and, for
   formats that can (`Store.open_writer`), writes ``<work dir>/output.tmp`` from the
   journaled rows in record order, so the file is nearly done when the last response
   arrives (the client mostly waits on the server, so its core is free for this).
4. Record the embedding space (`Store.record_space`: inside the store, or a pending
   sidecar in the work dir), finish the new store (or write it now, `Store.write`),
   fsync, load it with the real library when importable and re-read it with our own
   parser unless the library's check covered ids, dimension and finite rows (one read).
5. In place: hard-link the original to ``<name>.d<old dim>.bak<ext>`` (an older space
   record moves beside the backup), then ``os.replace`` the new file over it and move
   the pending sidecar beside it. ``--out``: ``os.replace`` to the new path.
6. Remove the work dir.

Until step 5 the original is never opened for writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import MigrationError, MissingTextError, VLLMEmbedError
from vllm_embed._space import ClientSpace

from ._journal import WorkDir, work_dir_for
from ._jsonio import fsync_dir, fsync_file
from ._space import EmbeddingSpace, sidecar_path
from ._store import Rows, RowWriter, Store, pending_sidecar, row_norms

__all__ = [
    "DryRunReport",
    "Embedder",
    "MigrationOptions",
    "MigrationResult",
    "MissingTextError",
    "NoProgress",
    "Progress",
    "checked_vectors",
    "dry_run",
    "migrate_store",
]

#: The largest chunk (rows embedded between two journal entries).
DEFAULT_CHUNK_ROWS = 65536
#: The first chunk of a run, before the server's rate is known.
FIRST_CHUNK_ROWS = 512
#: Seconds of embedding per chunk: what a run killed mid-chunk loses at most.
CHUNK_SECONDS = 5.0
MISSING_LISTED = 10


class EmbedResultLike(Protocol):
    """What `Embedder.embed_with_info` returns (the core's ``EmbedResult``)."""

    @property
    def vectors(self) -> npt.NDArray[np.float32]: ...

    @property
    def truncated(self) -> int: ...


class Embedder(Protocol):
    """The part of ``vllm_embed.EmbeddingClient`` the engine uses.

    An embedder may also have the client's ``space_for(model)`` (its instructions and
    vector settings, recorded with the store); one without it records no instructions.
    """

    def embed_with_info(
        self, texts: Sequence[str], *, kind: Literal["raw", "query", "document"] = ...
    ) -> EmbedResultLike: ...

    def dimension(self) -> int: ...

    def model_name(self) -> str: ...


class Progress(Protocol):
    """Receives progress; the CLI shows a bar or plain lines."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    """A `Progress` that shows nothing (the default when none is given)."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class MigrationOptions:
    """How to migrate. ``dimensions`` is what was asked of the server (for the fingerprint)."""

    out: Path | None = None
    drop_missing_text: bool = False
    dimensions: int | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    kind: Literal["raw", "query", "document"] = "document"


@dataclass
class MigrationResult:
    """What a finished migration did (printed as the CLI summary)."""

    format: str
    source: Path
    output: Path
    backup: Path | None
    records: int
    dropped: list[str]
    old_dim: int | None
    new_dim: int
    seconds: float
    embedded_now: int
    resumed: int
    embed_seconds: float
    truncated: int
    verified_with: list[str] = field(default_factory=list)
    #: Seconds per step of the run, in order: ``prepare`` (checks, fingerprint, work
    #: dir, dimension probe), ``embed``, ``finish`` (what was left to write after the
    #: last response, fsync), ``verify`` (the new store read back), ``install`` (backup,
    #: rename, work dir removed). Opening the store is before the run and not in it.
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records embedded per second in this run (0 when nothing was embedded)."""
        return self.embedded_now / self.embed_seconds if self.embed_seconds > 0 else 0.0


@dataclass
class DryRunReport:
    """What a migration would do, from a timed probe; nothing written."""

    format: str
    source: Path
    records: int
    missing_text: list[str]
    text_field: str
    old_dim: int | None
    new_dim: int
    probe_records: int
    probe_seconds: float
    resumable_records: int

    @property
    def estimated_seconds(self) -> float:
        """Time for the remaining records at the probe's rate (one request, so pessimistic)."""
        todo = self.records - len(self.missing_text) - self.resumable_records
        if self.probe_records == 0 or self.probe_seconds <= 0:
            return 0.0
        return todo * self.probe_seconds / self.probe_records


# -- checks before any request ------------------------------------------------------------
def kept_records(store: Store, drop_missing_text: bool) -> tuple[list[int], list[str]]:
    """Indices to embed and ids dropped; `MissingTextError` if some lack text and not dropping."""
    missing = store.missing_text()
    missing_ids = [store.ids[i] for i in missing]
    if missing and not drop_missing_text:
        shown = ", ".join(repr(i) for i in missing_ids[:MISSING_LISTED])
        more = f" and {len(missing) - MISSING_LISTED} more" if len(missing) > MISSING_LISTED else ""
        raise MissingTextError(
            f"{len(missing)} of {len(store.ids)} records in {store.path} have no text in "
            f"{store.text_field} (missing, null or blank): {shown}{more}. Nothing was sent or "
            "written. Add their text, choose another field with --text-field, or re-run with "
            "--drop-missing-text to leave them out of the migrated store.",
            ids=missing_ids,
        )
    if missing and not store.can_drop_records:
        shown = ", ".join(repr(i) for i in missing_ids[:MISSING_LISTED])
        raise MissingTextError(
            f"{len(missing)} of {len(store.ids)} records in {store.path} have no text in "
            f"{store.text_field}: {shown}. A {store.format} store cannot leave records out "
            "(its row numbers are tied to files the migration keeps unchanged), so "
            "--drop-missing-text does not apply. Nothing was sent or written; give those "
            "records text or rebuild the store without them.",
            ids=missing_ids,
        )
    skip = set(missing)
    return [i for i in range(len(store.ids)) if i not in skip], missing_ids


#: Bytes hashed at each end of a source file by the fingerprint.
_FINGERPRINT_EDGE = 4 * 1024 * 1024


def _fingerprint(store: Store, settings: dict[str, object]) -> str:
    """What a resumable work dir is bound to: the source files and the settings.

    Per file: name, size, modification time (ns) and a SHA-256 of its first and last
    4 MiB. Rewriting a store changes its mtime (and usually its size and head), so a
    work dir is never resumed against a changed source; hashing the whole file (1 GB
    for 200,000 x 1024 floats) took seconds of every run for no extra safety.
    """
    digest = hashlib.sha256()
    for path in store.source_files():
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with open(path, "rb") as f:
            digest.update(f.read(_FINGERPRINT_EDGE))
            if stat.st_size > 2 * _FINGERPRINT_EDGE:
                f.seek(stat.st_size - _FINGERPRINT_EDGE)
                digest.update(f.read())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _check_output(store: Store, out: Path | None, target: Path, resuming: bool) -> None:
    if out is None or resuming:
        return
    if target.exists():
        raise MigrationError(
            f"{target} already exists: --out must name a new file (or a new directory for a "
            "LlamaIndex store). Remove it or choose another path."
        )
    if target.resolve() == store.target.resolve():
        raise MigrationError("--out names the store itself; leave --out away to replace in place.")


# -- the run ------------------------------------------------------------------------------
def migrate_store(
    store: Store,
    embedder: Embedder,
    options: MigrationOptions | None = None,
    progress: Progress | None = None,
) -> MigrationResult:
    """Re-embed every record of ``store`` and replace it (or write ``options.out``).

    Resumable: if a previous run of the same source and settings was interrupted, its
    finished chunks are reused and only the rest is embedded. Raises `MissingTextError`
    before any request, `MigrationError` (chained to the cause) when the server fails
    mid-run (the original is untouched; run again to resume), `StoreFormatError` when
    the written file fails verification.
    """
    options = options or MigrationOptions()
    progress = progress or NoProgress()
    began = time.perf_counter()
    keep, dropped = kept_records(store, options.drop_missing_text)
    target = store.output_target(options.out)
    work_path = work_dir_for(target)
    settings = _settings(store, embedder, options, len(keep))
    fingerprint = _fingerprint(store, settings)
    work = WorkDir.find(work_path, fingerprint)
    _check_output(store, options.out, target, work is not None)
    if work is None:
        new_dim = _probe_dimension(embedder, store)
        manifest = {
            "fingerprint": fingerprint,
            "source": str(store.path),
            **settings,
            "new_dim": new_dim,
            "chunk_rows": options.chunk_rows,
        }
        work = WorkDir.create(work_path, manifest)
    done = work.completed()
    resumed = sum(c.end - c.start for c in done.values())
    truncated = sum(c.truncated for c in done.values())
    ranges = [(c.start, c.end) for c in done.values()]
    assembler = _Assembler(store, work, keep)
    embed_began = time.perf_counter()
    phases = {"prepare": embed_began - began}
    progress.start(len(keep), resumed)
    try:
        truncated += _embed_chunks(
            store, embedder, options, work, keep, ranges, progress, assembler
        )
    except BaseException:
        assembler.abort()
        raise
    finally:
        progress.close()
    embed_seconds = phases["embed"] = time.perf_counter() - embed_began
    space = _space_of(embedder, store, work, options)
    try:
        verified = _assemble_and_check(store, work, keep, target, space, assembler, phases)
    except BaseException:
        assembler.abort()
        raise
    installing = time.perf_counter()
    backup = _swap_in(store, work, target, in_place=options.out is None)
    work.remove()
    phases["install"] = time.perf_counter() - installing
    return MigrationResult(
        format=store.format,
        source=store.path,
        output=store.final_path(target),
        backup=backup,
        records=len(keep),
        dropped=dropped,
        old_dim=store.old_dim,
        new_dim=work.dim,
        seconds=time.perf_counter() - began,
        embedded_now=len(keep) - resumed,
        resumed=resumed,
        embed_seconds=embed_seconds,
        truncated=truncated,
        verified_with=verified,
        phases=phases,
    )


def _settings(
    store: Store, embedder: Embedder, options: MigrationOptions, kept: int
) -> dict[str, object]:
    try:
        model = embedder.model_name()
    except VLLMEmbedError as exc:
        raise MigrationError(
            f"could not ask the embedding server which model it serves: {_clause(exc)}. "
            f"Nothing was written; {store.path} is untouched."
        ) from exc
    return {
        "format": store.format,
        "text_field": store.text_field,
        "model": model,
        "dimensions": options.dimensions,
        "kind": options.kind,
        "drop_missing_text": options.drop_missing_text,
        "records": kept,
    }


def _clause(exc: BaseException) -> str:
    """An error message usable inside a sentence (no trailing period)."""
    return str(exc).rstrip().rstrip(".")


def _probe_dimension(embedder: Embedder, store: Store) -> int:
    try:
        return int(embedder.dimension())
    except VLLMEmbedError as exc:
        raise MigrationError(
            f"could not reach the embedding server to learn the new dimension: {_clause(exc)}. "
            f"Nothing was written; {store.path} is untouched."
        ) from exc


def _embed_chunks(
    store: Store,
    embedder: Embedder,
    options: MigrationOptions,
    work: WorkDir,
    keep: list[int],
    done: list[tuple[int, int]],
    progress: Progress,
    assembler: _Assembler,
) -> int:
    """Embed every row not covered by ``done`` (journaled ``(start, end)`` ranges).

    Chunks are sized to about `CHUNK_SECONDS` of embedding at the rate measured so far
    (first chunk `FIRST_CHUNK_ROWS`, never more than ``options.chunk_rows``), so a run
    killed on a slow server loses at most one such chunk, and a fast one is not slowed
    by a journal entry (an fsync) every few rows. Each chunk is journaled by its start
    row; a resumed run fills exactly the gaps between journaled ranges, so the result
    does not depend on how the rows were chunked.
    """
    truncated = 0
    covered = sorted(done)
    finished = sum(end - start for start, end in covered)
    size = min(FIRST_CHUNK_ROWS, options.chunk_rows)
    position = 0
    assembler.start(_prefix_end(covered))
    for gap_start, gap_end in _gaps(list(covered), len(keep)):
        position = gap_start
        while position < gap_end:
            end = min(position + size, gap_end)
            rows = keep[position:end]
            texts = [str(store.texts[i]) for i in rows]
            began = time.perf_counter()
            try:
                result = embedder.embed_with_info(texts, kind=options.kind)
            except VLLMEmbedError as exc:
                raise MigrationError(
                    f"the migration of {store.path} stopped at record {position} of "
                    f"{len(keep)}: {_clause(exc)}. The original store is untouched. "
                    f"{finished} finished records are kept in {work.path}; run the same "
                    "command again to resume."
                ) from exc
            seconds = time.perf_counter() - began
            vectors = checked_vectors(result.vectors, len(rows), work.dim, position)
            work.record_chunk(position, position, vectors, int(result.truncated))
            covered.append((position, end))
            assembler.journaled(_prefix_end(covered))
            truncated += int(result.truncated)
            finished += len(rows)
            progress.advance(len(rows))
            position = end
            rate = len(rows) / max(seconds, 1e-6)
            size = max(1, min(options.chunk_rows, round(rate * CHUNK_SECONDS)))
    return truncated


def _prefix_end(covered: list[tuple[int, int]]) -> int:
    """How many rows from row 0 on are journaled without a gap."""
    end = 0
    for start, stop in sorted(covered):
        if start > end:
            break
        end = max(end, stop)
    return end


def _gaps(covered: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges of ``range(total)`` that no covered range holds."""
    gaps: list[tuple[int, int]] = []
    position = 0
    for start, end in covered:
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < total:
        gaps.append((position, total))
    return gaps


def checked_vectors(
    vectors: npt.NDArray[np.float32], count: int, dim: int, start: int
) -> npt.NDArray[np.float32]:
    """``vectors`` as float32 if they are ``count`` finite, non-zero rows of width ``dim``;
    else a `MigrationError` naming the records from ``start`` on."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (count, dim):
        raise MigrationError(
            f"the server returned vectors of shape {vectors.shape} for records {start}.."
            f"{start + count - 1}, expected ({count}, {dim}). Did the server's model change "
            "during the migration? The original store is untouched."
        )
    # One pass: a NaN or inf anywhere in a row makes its sum of squares NaN or inf.
    norms = row_norms(vectors)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise MigrationError(
            f"the server returned NaN, inf or all-zero vectors for records {start}.."
            f"{start + count - 1}; check the server. The original store is untouched."
        )
    return vectors


def _space_of(
    embedder: Embedder, store: Store, work: WorkDir, options: MigrationOptions
) -> EmbeddingSpace:
    """The record of the new store: the embedder's space (``space_for``, as the client
    gives it; a bare model for an embedder without one) with the new dimension and the
    instruction of ``options.kind``.

    ``normalized`` is read from the rows as they will be stored: the format normalises
    them (`Store.stores_unit_vectors`), or the server's rows are unit vectors already.
    """
    from vllm_embed import __version__

    model = embedder.model_name()
    space_for = getattr(embedder, "space_for", None)
    space: ClientSpace = space_for(model) if callable(space_for) else ClientSpace(model)
    normalized = store.stores_unit_vectors()
    if not normalized:
        first = next(Rows(work.vectors, work.count, work.dim).blocks(1024), None)
        normalized = first is not None and bool(
            np.allclose(np.linalg.norm(first, axis=-1), 1.0, atol=1e-3)
        )
    # no timestamp: a resumed run must write the same bytes as an uninterrupted one
    return space.record(
        work.dim, role=options.kind, normalized=normalized, tool_version=__version__
    )


def _assemble_and_check(
    store: Store,
    work: WorkDir,
    keep: list[int],
    target: Path,
    space: EmbeddingSpace,
    assembler: _Assembler,
    phases: dict[str, float],
) -> list[str]:
    finishing = time.perf_counter()
    rows = Rows(work.vectors, len(keep), work.dim)
    ids = [store.ids[i] for i in keep]
    store.prepare_output(target)
    pending = pending_sidecar(work.output)
    pending.unlink(missing_ok=True)
    writer = assembler.wait()  # every row added, or None (nothing streamed)
    store.record_space(work.output, space)
    if writer is not None:
        writer.finish()
    else:
        store.write(work.output, keep, rows)
    fsync_file(work.output)
    verifying = time.perf_counter()
    phases["finish"] = verifying - finishing
    verified = []
    library = store.check_with_library(work.output, ids, work.dim)
    if library is None or not store.library_check_is_complete:
        store.check_written(work.output, ids, work.dim)
        verified.append("vllm-embed")
    if library is not None:
        verified.append(library)
    phases["verify"] = time.perf_counter() - verifying
    return verified


class _Assembler:
    """The background thread that works while the server embeds.

    It calls `Store.warm_up` (imports for the checks), then, when the store has a
    `RowWriter` (`Store.open_writer`), feeds it the journaled rows in record order as
    the gap-free journaled prefix grows (`journaled`). Rows are read back from the
    work dir's vector file in blocks of about 4 MiB, so the thread never holds the GIL
    long (the client's I/O threads keep the server busy) and memory stays flat.
    `wait` returns the writer once every row was added; errors in the thread are
    raised there (or dropped by `abort` when the run failed anyway).
    """

    _BLOCK_BYTES = 4 * 1024 * 1024

    def __init__(self, store: Store, work: WorkDir, keep: list[int]) -> None:
        self._store = store
        self._work = work
        self._total = len(keep)
        self._writer: RowWriter | None = store.open_writer(work.output, keep, work.dim)
        self._ready = 0
        self._added = 0
        self._stop = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="vllm-embed-assemble", daemon=True)
        self._started = False

    def start(self, ready: int) -> None:
        """Start the thread; ``ready`` rows are journaled already (a resumed run)."""
        self._ready = ready
        self._started = True
        self._thread.start()

    def journaled(self, ready: int) -> None:
        """The first ``ready`` rows are durable in the work dir's vector file."""
        with self._cond:
            self._ready = ready
            self._cond.notify()

    def wait(self) -> RowWriter | None:
        """Wait until every row was added; the writer (to finish), or None."""
        if not self._started:
            self.start(self._total)
        self.journaled(self._total)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._writer

    def abort(self) -> None:
        """Stop the thread (the run failed); the partial output stays for the next run."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._started:
            self._thread.join()
        if self._writer is not None:
            self._writer.abort()

    def _run(self) -> None:
        try:
            self._store.warm_up()
            if self._writer is None:
                return
            self._writer.begin()
            step = max(1, self._BLOCK_BYTES // (self._work.dim * 4))
            while True:
                with self._cond:
                    while not self._stop and self._added >= self._ready:
                        if self._added >= self._total:
                            return
                        self._cond.wait()
                    if self._stop:
                        return
                    ready = self._ready
                while self._added < ready and not self._stop:
                    count = min(step, ready - self._added)
                    self._writer.add(self._read(self._added, count))
                    self._added += count
        except BaseException as exc:  # raised by wait() in the engine's thread
            self._error = exc

    def _read(self, start: int, count: int) -> npt.NDArray[np.float32]:
        dim = self._work.dim
        block = np.fromfile(
            self._work.vectors, dtype="<f4", count=count * dim, offset=start * dim * 4
        )
        if block.size != count * dim:
            raise MigrationError(f"{self._work.vectors} is shorter than the journal says")
        return block.reshape(count, dim)


def _swap_in(store: Store, work: WorkDir, target: Path, *, in_place: bool) -> Path | None:
    if store.installs_itself:
        return store.install(work.output, target, in_place=in_place)
    backup = None
    if in_place:
        backup = store.backup_path()
        try:
            os.link(store.target, backup)
        except OSError:
            shutil.copy2(store.target, backup)
            fsync_file(backup)
    # An older record describes the old vectors: it goes with the backup (or away),
    # before the new store is in place, so no store is ever beside a wrong record.
    side = sidecar_path(store.space_anchor(target))
    if side.is_file():
        if backup is not None:
            os.replace(side, sidecar_path(backup))
        else:
            side.unlink()
    os.replace(work.output, target)
    pending = pending_sidecar(work.output)
    if pending.is_file():
        os.replace(pending, side)
    fsync_dir(target.parent)
    if side.parent != target.parent:
        fsync_dir(side.parent)
    return backup


def dry_run(
    store: Store,
    embedder: Embedder,
    options: MigrationOptions | None = None,
    probe_records: int = 32,
) -> DryRunReport:
    """Format, counts, text field, old and new dimension and a time estimate; writes nothing."""
    options = options or MigrationOptions()
    missing = [store.ids[i] for i in store.missing_text()]
    skip = set(store.missing_text())
    sample = [str(t) for i, t in enumerate(store.texts) if i not in skip][:probe_records]
    began = time.perf_counter()
    try:
        if sample:
            new_dim = int(embedder.embed_with_info(sample, kind=options.kind).vectors.shape[1])
        else:
            new_dim = int(embedder.dimension())
    except VLLMEmbedError as exc:
        raise MigrationError(f"the probe request failed: {_clause(exc)}.") from exc
    seconds = time.perf_counter() - began
    resumable = 0
    work_path = work_dir_for(store.output_target(options.out))
    if work_path.exists():
        try:
            keep, _ = kept_records(store, options.drop_missing_text)
            fingerprint = _fingerprint(store, _settings(store, embedder, options, len(keep)))
            work = WorkDir.find(work_path, fingerprint)
            if work is not None:
                resumable = sum(c.end - c.start for c in work.completed().values())
        except MigrationError:
            resumable = 0
    return DryRunReport(
        format=store.format,
        source=store.path,
        records=len(store.ids),
        missing_text=missing,
        text_field=store.text_field,
        old_dim=store.old_dim,
        new_dim=new_dim,
        probe_records=len(sample),
        probe_seconds=seconds,
        resumable_records=resumable,
    )
