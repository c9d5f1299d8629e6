"""What every store format provides to the migration engine.

A format module reads its store once into a `Store`: the record ids, the text each
record must be re-embedded from, and the old dimension. The new file is written from
the embedded rows either while they are embedded (`Store.open_writer`: a `RowWriter`
fed in record order by the engine's background thread) or afterwards from the raw
float32 file (`Store.write`). It is then loaded with the real library when that is
importable (`Store.check_with_library`) and, unless that check already covers ids,
dimension and finite rows (`Store.library_check_is_complete`), re-read with our own
parser (`Store.check_written`): one full read of the new store when the library is there.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import StoreFormatError

from ._space import SIDECAR_SUFFIX, EmbeddingSpace, read_sidecar, write_space_file

__all__ = [
    "RowWriter",
    "Rows",
    "Store",
    "check_rows",
    "pending_sidecar",
    "row_norms",
]

F32Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Rows:
    """The new vectors: a raw little-endian float32 file of ``count`` rows of ``dim``."""

    path: Path
    count: int
    dim: int

    def blocks(self, rows_per_block: int = 8192) -> Iterator[F32Matrix]:
        """Yield consecutive blocks of rows, in record order, without loading the file."""
        with open(self.path, "rb") as f:
            done = 0
            while done < self.count:
                n = min(rows_per_block, self.count - done)
                block = np.fromfile(f, dtype="<f4", count=n * self.dim)
                if block.size != n * self.dim:
                    raise StoreFormatError(f"{self.path} is shorter than {self.count} rows")
                yield block.reshape(n, self.dim)
                done += n

    def rows(self) -> Iterator[F32Matrix]:
        """Yield one row at a time (read a block at a time)."""
        for block in self.blocks():
            yield from block


def pending_sidecar(out: Path) -> Path:
    """Where the default `Store.record_space` puts the record of the work copy ``out``.

    The engine moves it beside the final store right after the store is swapped in.
    """
    return out.with_name(out.name + SIDECAR_SUFFIX)


def row_norms(block: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The L2 norm of every row (``np.linalg.norm(block, axis=-1)`` without its
    full-size temporary: 3-5x faster on a (65536, 1024) block)."""
    squares = np.einsum("ij,ij->i", block, block)
    return np.sqrt(squares)  # type: ignore[no-any-return]


def check_rows(block: npt.NDArray[np.floating], where: str, first_row: int) -> None:
    """Refuse NaN / inf values (a broken server or a broken file)."""
    finite = np.isfinite(block).all(axis=-1)
    if not finite.all():
        bad = first_row + int(np.argmin(finite))
        raise StoreFormatError(f"{where}: row {bad} contains NaN or inf values.")


class RowWriter(ABC):
    """Writes a new store while its rows are still being embedded (`Store.open_writer`).

    The engine calls `begin` once, then `add` with consecutive blocks of rows in record
    order (``keep`` order) as the journal's finished prefix grows, all from one
    background thread; then `finish` from the engine's thread once every row was
    added and the space was recorded (`Store.record_space`). `abort` instead of
    `finish` when the run fails: the partial file stays in the work dir and a resumed
    run starts it again from `begin`.
    """

    def begin(self) -> None:
        """Write what comes before the rows (called in the background thread)."""
        return None

    @abstractmethod
    def add(self, block: F32Matrix) -> None:
        """The next rows, in record order, as the server returned them."""

    @abstractmethod
    def finish(self) -> None:
        """Write what comes after the rows and close the file."""

    def abort(self) -> None:
        """Close whatever is open; the partial output is left for the next run to replace."""
        return None


class Store(ABC):
    """A store read from disk, ready to be migrated."""

    #: Human-readable format, printed by the CLI (e.g. "nano-vectordb (LightRAG)").
    format: str
    #: What the user named (a file, or a LlamaIndex persist directory).
    path: Path
    #: The file a migration rewrites.
    target: Path
    #: Dimension the store was built with (None for an empty store without one).
    old_dim: int | None
    #: Where the text comes from, for messages ("caption", "docstore text", ...).
    text_field: str
    #: Why ``text_field`` was chosen when it was inferred from the records (printed).
    text_field_reason: str = ""
    ids: list[str]
    texts: list[str | None]

    def source_files(self) -> list[Path]:
        """The files whose content a migration depends on (hashed for resume safety)."""
        return [self.target]

    def missing_text(self) -> list[int]:
        """Indices of records that have no text to embed (missing, null, not a string, blank)."""
        return [i for i, t in enumerate(self.texts) if not isinstance(t, str) or not t.strip()]

    def output_target(self, out: Path | None) -> Path:
        """The file to produce: ``target`` in place, or the file named by ``--out``."""
        return self.target if out is None else out

    def prepare_output(self, out: Path) -> None:
        """Create whatever must exist next to ``out`` (e.g. companion files); default none."""
        out.parent.mkdir(parents=True, exist_ok=True)

    def backup_path(self) -> Path:
        """``database.json`` -> ``database.d1024.bak.json`` (first free name)."""
        stem, suffix = self.target.stem, self.target.suffix or ".json"
        dim = f"d{self.old_dim}" if self.old_dim is not None else "dunknown"
        candidate = self.target.with_name(f"{stem}.{dim}.bak{suffix}")
        n = 1
        while candidate.exists():
            candidate = self.target.with_name(f"{stem}.{dim}.bak{n}{suffix}")
            n += 1
        return candidate

    @abstractmethod
    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        """Write the migrated store to ``out``: records ``keep`` (in order) with ``rows``."""

    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter | None:
        """A `RowWriter` that builds ``out`` while the rows are embedded, or None.

        None (the default) makes the engine call `write` after embedding instead.
        Formats override this when they can write rows in record order as they come
        (nano-vectordb's base64 matrix, an untrained FAISS index), so the only work left
        after the last request is the end of the file and the check.
        """
        return None

    def warm_up(self) -> None:
        """Import what the checks will need (called in a background thread while
        embedding, so the import does not add to the run's tail); default nothing."""
        return None

    @abstractmethod
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        """Re-read ``path`` with our own parser: same ids in order, ``dim`` everywhere, finite."""

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """Load ``path`` with the real library if importable; return its name, else None."""
        return None

    #: True when `check_with_library` (when it runs) also checks what `check_written`
    #: does: every id in order, the dimension, finite rows. The engine then skips the
    #: second read of the new store.
    library_check_is_complete: bool = False

    #: False for formats whose rows cannot be left out without rewriting files the
    #: migration keeps byte-identical (FAISS: the pickle maps row numbers to documents).
    can_drop_records: bool = True

    def stores_unit_vectors(self) -> bool:
        """True when the format L2-normalises the rows it stores (nano-vectordb does)."""
        return False

    def space_anchor(self, target: Path) -> Path:
        """The path whose sidecar records the space of the store produced at ``target``.

        Default: ``target`` itself (``database.json`` ->
        ``database.json.vllm-embed-space.json``). A directory store returns its directory.
        """
        return target

    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Record ``space`` with the new store about to be written at ``out`` (work copy).

        Called by the engine right before `write` (``out`` may not exist yet). The
        default writes the record to `pending_sidecar` (``out`` + the sidecar suffix);
        after the store is verified and swapped in, the engine moves it beside the
        final store (``sidecar_path(space_anchor(target))``), having first moved any
        older record beside the backup. Formats with a metadata slot of their own
        (nano-vectordb ``additional_data``, Chroma collection metadata, kano's ``meta``
        table) override this to keep ``space`` and put it inside the store in `write`,
        so it is verified and swapped with the store; they write no sidecar.
        """
        write_space_file(pending_sidecar(out), space)

    #: True for stores that put their verified output in place themselves (`install`):
    #: directories (Chroma) and files whose name changes with the model (kano).
    installs_itself: bool = False

    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the verified output ``new`` at ``target`` (or where the format says); return
        the backup of the original (None for ``--out``). Only when `installs_itself`."""
        raise NotImplementedError

    def final_path(self, target: Path) -> Path:
        """Where the migrated store ends up (``target``, unless the format renames it)."""
        return target

    def recorded_space(self) -> EmbeddingSpace | None:
        """The embedding space recorded with the store, if any (default: the sidecar).

        Formats with a metadata slot of their own (nano-vectordb ``additional_data``,
        Chroma collection metadata, kano's ``meta`` table) override this.
        """
        return read_sidecar(self.space_anchor(self.target))

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        """Up to ``count`` (stored text, stored vector) pairs for ``doctor``'s probe.

        The texts are what was embedded before the document instruction was applied.
        None when the format cannot give them (the probe is then skipped, with a WARN).
        """
        return None


def sample_from(
    texts: Sequence[str | None], vector_of: Callable[[int], Sequence[float]], count: int
) -> tuple[list[str], F32Matrix] | None:
    """The first ``count`` records that have text, with their stored vectors."""
    wanted = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()][:count]
    if not wanted:
        return None
    matrix = np.asarray([vector_of(i) for i in wanted], dtype=np.float32)
    return [str(texts[i]) for i in wanted], matrix


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a big object graph is built.

    Unpickling LangChain's docstore (200,000 pydantic Documents) triggers collection
    after collection over the objects it just made: 1.8 s with the collector, 0.9 s
    without. Nothing built there is garbage, and the collector's previous state is
    restored afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def copy_file(src: Path, dst: Path) -> None:
    """Copy a companion file, keeping its timestamps."""
    shutil.copy2(src, dst)
