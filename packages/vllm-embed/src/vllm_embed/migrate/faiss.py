"""FAISS indexes: LangChain ``FAISS.save_local`` folders and LightRAG's FAISS storage.

LangChain (``langchain_community.vectorstores.FAISS``)::

    folder/{index_name}.faiss   faiss.write_index(index)
    folder/{index_name}.pkl     pickle of (InMemoryDocstore, {row: doc id})

Row ``i``'s text is ``docstore.search(index_to_docstore_id[i]).page_content``, what
LangChain embedded. Reading the pickle runs code, exactly as ``FAISS.load_local``
warns, so it needs the same explicit consent: ``allow_dangerous_deserialization=True``
(``--allow-dangerous-deserialization``); without it `PickleConsentError` says why.

LightRAG (``lightrag.kg.faiss_impl.FaissVectorDBStorage``)::

    faiss_index_{namespace}.index             IndexFlatIP of L2-normalised rows
    faiss_index_{namespace}.index.meta.json   {"<row>": {"__id__", "content", ...}}

Row ``i``'s text is ``meta[str(i)]["content"]`` (what LightRAG embeds).

Both: the new index is the same class with the same metric and parameters at the new
dimension (its factory string is read back with ``reverse_index_factory``); trained
indexes (IVF, PQ, SQ) are trained on the new vectors, HNSW keeps ``M``,
``efConstruction`` and ``efSearch``; an index that cannot be rebuilt so is refused,
never turned into a flat one. Rows are L2-normalised only if the old rows were unit
vectors. Only the index file is replaced: the ``.pkl`` / ``.meta.json`` stay
byte-identical (row numbers and documents do not change). Needs ``faiss-cpu``.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._jsonio import SyncEvery, load_json
from ._store import F32Matrix, Rows, RowWriter, Store, check_rows, copy_file, gc_paused

__all__ = [
    "FaissIndexStore",
    "LangChainFaissStore",
    "LightRAGFaissStore",
    "PickleConsentError",
    "UnsupportedIndexError",
    "find_faiss_store",
    "read_langchain_faiss",
    "read_lightrag_faiss",
]

_LIGHTRAG_INDEX = re.compile(r"^faiss_index_(?P<namespace>.+)\.index$")
_LIGHTRAG_META_SUFFIX = ".meta.json"
_UNIT_TOLERANCE = 1e-3
_UNIT_TOLERANCE_LOSSY = 3e-2
_SAMPLE_ROWS = 64
#: Factory strings rebuilt as they are (reverse_index_factory's spelling).
_SUPPORTED_FACTORY = re.compile(
    r"(IVF\d+,)?(Flat|PQ\d+(x\d+)?|SQ(4|6|8|fp16|bf16))|HNSW\d+(,Flat)?"
)
_ADD_BLOCK = 16384


class PickleConsentError(StoreFormatError):
    """A LangChain FAISS ``.pkl`` would have to be unpickled without the user's consent."""

    def __init__(self, message: str, *, index_path: Path) -> None:
        super().__init__(message)
        #: The ``.faiss`` file (whose sidecar records the embedding space).
        self.index_path = index_path


class UnsupportedIndexError(MigrationError):
    """A FAISS index that cannot be rebuilt with the same class and parameters."""


def _faiss() -> Any:
    try:
        return importlib.import_module("faiss")
    except ImportError as exc:
        raise StoreFormatError(
            "this is a FAISS index; reading and rebuilding it needs the faiss library: "
            "pip install faiss-cpu"
        ) from exc


def _factory_string(index: Any, where: Path) -> str:
    """The ``index_factory`` string that rebuilds ``index``'s class and parameters."""
    _faiss()
    tools = importlib.import_module("faiss.contrib.factory_tools")
    name = type(index).__name__
    try:
        factory = str(tools.reverse_index_factory(index))
    except (NotImplementedError, AssertionError, RuntimeError, AttributeError) as exc:
        raise UnsupportedIndexError(
            f"{where}: a {name} cannot be rebuilt with the same structure at another "
            "dimension by vllm-embed (supported: Flat, IVF*, PQ, SQ and HNSW indexes, "
            "IndexIDMap excluded). Nothing was written; rebuild the index with your "
            "application instead."
        ) from exc
    if not _SUPPORTED_FACTORY.fullmatch(factory):
        raise UnsupportedIndexError(
            f"{where}: a {name} ({factory}) cannot be rebuilt with the same structure at "
            "another dimension by vllm-embed (supported: Flat, IVF<n>,Flat / PQ / SQ, PQ, SQ "
            "and HNSW<M> indexes; not IDMap, LSH or pre-transforms). Nothing was written; "
            "rebuild the index with your application instead."
        )
    return factory


class FaissIndexStore(Store):
    """A FAISS index file plus the file that holds its texts (shared by both layouts)."""

    #: The row numbers of the index are tied to the unchanged ``.pkl`` / ``.meta.json``.
    can_drop_records = False
    #: The companion file kept byte-identical.
    companion: Path

    def _read_index(self, path: Path) -> None:
        faiss = _faiss()
        try:
            index = _read_mapped(faiss, path)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise StoreFormatError(
                f"{path} is not a readable FAISS index (faiss: {first[:200]}). The file may "
                "be truncated or damaged: restore it from a backup; nothing was written."
            ) from exc
        self.old_dim = int(index.d)
        self.ntotal = int(index.ntotal)
        self.index_class = type(index).__name__
        self.metric = int(index.metric_type)
        self.factory = _factory_string(index, path)
        self._params = _runtime_params(index)
        self._lossy = any(code in self.factory for code in ("PQ", "SQ", "LSH", "RQ"))
        self._sample = _reconstruct_head(index, min(_SAMPLE_ROWS, self.ntotal))
        self.unit_rows = self._sample is not None and bool(
            np.allclose(
                np.linalg.norm(self._sample, axis=1),
                1.0,
                atol=_UNIT_TOLERANCE_LOSSY if self._lossy else _UNIT_TOLERANCE,
            )
        )
        self._first_row: F32Matrix | None = None

    def _check_rows_match(self, count: int, what: str) -> None:
        if count != self.ntotal:
            raise StoreFormatError(
                f"{self.target} holds {self.ntotal} vectors but {what} describes {count} "
                "rows: the two files are from different saves (or one is truncated). "
                "Nothing was written; restore the pair from a backup or save the store "
                "again with its application."
            )

    # -- store protocol ----------------------------------------------------------------
    def source_files(self) -> list[Path]:
        return [self.target, self.companion]

    def stores_unit_vectors(self) -> bool:
        return self.unit_rows

    def output_target(self, out: Path | None) -> Path:
        """In place, or ``--out DIR``: ``DIR/<same index file name>``."""
        return self.target if out is None else out / self.target.name

    def prepare_output(self, out: Path) -> None:
        """Copy the companion file next to a new index (``--out DIR``)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.parent.resolve() != self.target.parent.resolve():
            copy_file(self.companion, out.parent / self.companion.name)

    def _new_index(self, count: int, dim: int) -> Any:
        """An empty index of the source's class, metric and parameters at ``dim``."""
        if count != self.ntotal:
            raise MigrationError(
                f"{self.format}: every row must be migrated ({count} of {self.ntotal})."
            )
        faiss = _faiss()
        index = faiss.index_factory(dim, self.factory, self.metric)
        # the class as a reader sees it (index_factory's "Flat" is read back as IndexFlatL2)
        built = type(faiss.deserialize_index(faiss.serialize_index(index))).__name__
        if built != self.index_class:
            raise UnsupportedIndexError(
                f"{self.target}: rebuilding {self.factory!r} gave a {built}, "
                f"not a {self.index_class}; refusing to change the index class. Nothing "
                "was written."
            )
        _set_params(index, self._params)
        return index

    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        index = self._new_index(len(keep), rows.dim)
        if not index.is_trained:
            self._train(index, rows)
        writer = _FaissWriter(self, index, out)
        for block in rows.blocks(_ADD_BLOCK):
            writer.add(block)
        writer.finish()

    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter | None:
        """Build the new index while embedding, unless it must be trained on all of the
        rows first (IVF, PQ, SQ8...: built by `write` after the last request).

        A flat index (LangChain's default) is streamed to the file itself: its header for
        ``len(keep)`` rows, then the rows as they come (`_FlatFileWriter`), so nothing is
        left to write after the last response. Other indexes are filled in memory and
        written by ``faiss.write_index`` at the end."""
        index = self._new_index(len(keep), dim)
        if not index.is_trained:
            return None
        header = _flat_header(index, len(keep), dim)
        if header is not None:
            return _FlatFileWriter(self, header, out)
        return _FaissWriter(self, index, out)

    def _stored_rows(self, block: F32Matrix) -> F32Matrix:
        """``block`` as the new index holds it: contiguous float32, L2-normalised when the
        old rows were unit vectors. The first row is kept for the self-search check."""
        block = np.ascontiguousarray(block, dtype="<f4")
        if self.unit_rows:
            block = block.copy()
            _faiss().normalize_L2(block)
        if self._first_row is None and len(block):
            self._first_row = block[:1].copy()
        return block

    def _train(self, index: Any, rows: Rows) -> None:
        faiss = _faiss()
        matrix = np.fromfile(rows.path, dtype="<f4", count=rows.count * rows.dim)
        matrix = matrix.reshape(rows.count, rows.dim)
        if self.unit_rows:
            faiss.normalize_L2(matrix)
        try:
            index.train(matrix)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UnsupportedIndexError(
                f"{self.target}: the {self.index_class} ({self.factory}) could not be trained "
                f"on the {rows.count} new vectors of dimension {rows.dim} (faiss: "
                f"{first[:200]}). Nothing was written; a trained index needs enough rows "
                "(IVF: at least one per list; PQ: 256 per codebook)."
            ) from exc

    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        self._check_index(_faiss().read_index(str(path)), path, ids, dim)

    def _check_index(self, index: Any, path: Path, ids: Sequence[str], dim: int) -> None:
        """Class, metric, dimension, row count, finite head rows, row 0 found by itself."""
        where = f"written index {path}"
        if type(index).__name__ != self.index_class or int(index.metric_type) != self.metric:
            raise StoreFormatError(f"{where}: class or metric differs from the source")
        if int(index.d) != dim or int(index.ntotal) != len(ids):
            raise StoreFormatError(
                f"{where}: {index.ntotal} rows of dimension {index.d}, expected {len(ids)} of {dim}"
            )
        head = _reconstruct_head(index, min(_SAMPLE_ROWS, len(ids)))
        if head is not None:
            check_rows(head, where, 0)
        if self._first_row is not None:
            found = _self_search(index, self._first_row)
            if 0 not in found:
                raise StoreFormatError(f"{where}: row 0 is not found by its own vector")

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        if self._sample is None:
            return None
        wanted = [
            i
            for i, t in enumerate(self.texts[: len(self._sample)])
            if isinstance(t, str) and t.strip()
        ][:count]
        if not wanted:
            return None
        return [str(self.texts[i]) for i in wanted], self._sample[wanted]


class _FaissWriter(RowWriter):
    """Adds rows to a trained (or training-free) index; ``finish`` writes the file.

    Rows are added in blocks of exactly `_ADD_BLOCK` (the rest at the end), whatever
    blocks they arrive in: an HNSW graph depends on how its rows were split into ``add``
    calls, and the file must not depend on the run's timing or interruptions (it equals
    what `FaissIndexStore.write` builds).
    """

    def __init__(self, store: FaissIndexStore, index: Any, out: Path) -> None:
        self._store = store
        self._index = index
        self._out = out
        self._pending: list[F32Matrix] = []
        self._pending_rows = 0

    def add(self, block: F32Matrix) -> None:
        self._pending.append(block)
        self._pending_rows += len(block)
        while self._pending_rows >= _ADD_BLOCK:
            self._add_rows(_ADD_BLOCK)

    def _add_rows(self, count: int) -> None:
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        block, rest = joined[:count], joined[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)
        self._index.add(self._store._stored_rows(block))

    def finish(self) -> None:
        if self._pending_rows:
            self._add_rows(self._pending_rows)
        _faiss().write_index(self._index, str(self._out))


class _FlatFileWriter(RowWriter):
    """Writes a flat index file as rows arrive: ``faiss.write_index``'s header for the
    final row count (`_flat_header`), then the float32 rows (L2-normalised when the old
    rows were unit vectors), ``fdatasync`` every 64 MiB. ``faiss.read_index`` checks it
    with the rest of the new store."""

    def __init__(self, store: FaissIndexStore, header: bytes, out: Path) -> None:
        self._store = store
        self._header = header
        self._out = out
        self._file: Any = None
        self._sync: Any = None

    def begin(self) -> None:
        self._file = open(self._out, "wb")  # noqa: SIM115 - closed by finish/abort
        self._file.write(self._header)
        self._sync = SyncEvery(self._file)

    def add(self, block: F32Matrix) -> None:
        rows = self._store._stored_rows(block)
        self._file.write(rows.tobytes())
        self._sync.wrote(rows.nbytes)

    def finish(self) -> None:
        file, self._file = self._file, None
        file.close()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _flat_header(index: Any, count: int, dim: int) -> bytes | None:
    """``faiss.write_index``'s header of a flat index of ``count`` rows, or None.

    Found by faiss itself, not from its format's source: the empty index and the same
    index with one and with two zero rows are serialised; a serialisation must be a
    header plus the raw rows, and the header must differ only in two 64-bit fields, the
    row count and the number of floats. The header for ``count`` rows is the empty one
    with those two fields set, and it must reproduce the one- and two-row headers
    exactly; any other layout returns None (the index is then written by
    ``write_index``).
    """
    faiss = _faiss()
    if type(index).__name__ not in ("IndexFlat", "IndexFlatL2", "IndexFlatIP"):
        return None

    def serialised(rows: int) -> bytes:
        copy = faiss.clone_index(index)
        if rows:
            copy.add(np.zeros((rows, dim), dtype=np.float32))
        return bytes(faiss.serialize_index(copy))

    empty, one, two = serialised(0), serialised(1), serialised(2)
    size = len(empty)
    if len(one) != size + dim * 4 or len(two) != size + 2 * dim * 4:
        return None
    differing = [i for i in range(size) if empty[i] != one[i]]
    fields: list[int] = []
    for value in (1, dim):
        packed = struct.pack("<q", value)
        starts = sorted({j for i in differing for j in range(max(0, i - 7), i + 1)})
        at = next(
            (
                j
                for j in starts
                if one[j : j + 8] == packed
                and empty[j : j + 8] == bytes(8)
                and all(abs(j - f) >= 8 for f in fields)  # not the row count again
            ),
            None,
        )
        if at is None:
            return None
        fields.append(at)

    def header(rows: int) -> bytes:
        out = bytearray(empty)
        out[fields[0] : fields[0] + 8] = struct.pack("<q", rows)
        out[fields[1] : fields[1] + 8] = struct.pack("<q", rows * dim)
        return bytes(out)

    if header(1) != one[:size] or header(2) != two[:size]:
        return None
    return header(count)


def _read_mapped(faiss: Any, path: Path) -> Any:
    """Read an index whose vectors are only sampled: memory-mapped when faiss can
    (``IO_FLAG_MMAP_IFC``, faiss >= 1.8: a 800 MB flat index opens in 0.07 s instead of
    0.7 s and is not copied into memory), else read whole."""
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | getattr(faiss, "IO_FLAG_READ_ONLY", 0)
    if flag:
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError:
            pass  # an index kind that cannot be mapped: read it whole (errors surface there)
    return faiss.read_index(str(path))


def _runtime_params(index: Any) -> dict[str, int]:
    """Search / build parameters not in the factory string (nprobe, efSearch, ...)."""
    faiss = _faiss()
    params: dict[str, int] = {}
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        params["nprobe"] = int(ivf.nprobe)
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        params["efSearch"] = int(hnsw.efSearch)
        params["efConstruction"] = int(hnsw.efConstruction)
    return params


def _set_params(index: Any, params: dict[str, int]) -> None:
    faiss = _faiss()
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    if "efSearch" in params:
        index.hnsw.efSearch = params["efSearch"]
        index.hnsw.efConstruction = params["efConstruction"]


def _reconstruct_head(index: Any, count: int) -> F32Matrix | None:
    """Rows ``0..count-1`` as stored (approximate for lossy codes), or None."""
    if count == 0:
        return None
    faiss = _faiss()
    ivf = faiss.try_extract_index_ivf(index)
    try:
        if ivf is not None:
            ivf.make_direct_map()
        out: F32Matrix = np.asarray(index.reconstruct_n(0, count), dtype=np.float32)
    except RuntimeError:
        return None
    return out


def _self_search(index: Any, row: F32Matrix) -> set[int]:
    """Row numbers the index returns for ``row`` (top 10)."""
    k = min(10, int(index.ntotal))
    _, found = index.search(row, k)
    return {int(i) for i in found[0]}


# -- LangChain ---------------------------------------------------------------------------
class LangChainFaissStore(FaissIndexStore):
    """A LangChain ``FAISS.save_local`` folder (one ``index_name``)."""

    def __init__(self, folder: Path, index_name: str, *, allow_dangerous_deserialization: bool):
        self.path = folder
        self.index_name = index_name
        self.target = folder / f"{index_name}.faiss"
        self.companion = folder / f"{index_name}.pkl"
        self.format = "LangChain FAISS (save_local)"
        self.text_field = "Document.page_content"
        if not self.companion.is_file():
            raise StoreFormatError(
                f"{self.target} has no {self.companion.name} beside it: the documents "
                "LangChain embedded are not there, so the vectors cannot be rebuilt. Point "
                "migrate at the folder save_local wrote."
            )
        if not allow_dangerous_deserialization:
            raise PickleConsentError(
                f"{self.companion} is a pickle: reading it runs code from the file, which is "
                "why LangChain's FAISS.load_local refuses it without "
                "allow_dangerous_deserialization=True. If you made this store (or trust "
                "whoever did), re-run with --allow-dangerous-deserialization (library: "
                "open_store(..., allow_dangerous_deserialization=True)). Nothing was read "
                "or written.",
                index_path=self.target,
            )
        self._read_index(self.target)
        companion = self.companion.stat()
        docstore, mapping = _load_pickle(self.companion)
        # kept for the check: the .pkl is not rewritten, so it is not unpickled twice
        self._docstore, self._mapping = docstore, mapping
        self._companion_stat = (companion.st_size, companion.st_mtime_ns)
        self._check_rows_match(len(mapping), f"{self.companion.name} (index_to_docstore_id)")
        self.ids = [str(mapping[i]) for i in range(self.ntotal)]
        self.texts = _page_contents(docstore, [mapping[i] for i in range(self.ntotal)])

    #: LangChain's check reads the new index once and checks it as `check_written` does.
    library_check_is_complete = True

    def warm_up(self) -> None:
        with contextlib.suppress(ImportError):
            _langchain_faiss()

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """What ``FAISS.load_local`` does, reading the new index once: ``read_index``,
        LangChain's ``FAISS`` over it with the docstore and row mapping of the ``.pkl``
        (unchanged, so the objects unpickled when the store was opened, not a second
        unpickling), then a similarity search that must find row 0's document."""
        try:
            faiss_class, fake_embedding = _langchain_faiss()
        except ImportError:
            return None
        stat = self.companion.stat()
        if (stat.st_size, stat.st_mtime_ns) != self._companion_stat:
            raise StoreFormatError(
                f"{self.companion} changed while it was migrated (another process saved the "
                "store). The new index was not installed; run the migration again."
            )
        index = _faiss().read_index(str(path))
        self._check_index(index, path, ids, dim)
        db = faiss_class(fake_embedding(size=dim), index, self._docstore, self._mapping)
        if self._first_row is not None and ids:
            k = min(10, len(ids))
            hits = db.similarity_search_by_vector(self._first_row[0].tolist(), k=k)
            if ids[0] not in {getattr(d, "id", None) for d in hits} and not any(
                d.page_content == self.texts[0] for d in hits
            ):
                raise StoreFormatError(
                    f"LangChain's similarity search on {path} does not find the first "
                    "document by its own vector"
                )
        return "langchain-community FAISS"


def _langchain_faiss() -> tuple[Any, Any]:
    """LangChain's FAISS vector store class and a stand-in embedding (ImportError if absent)."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return FAISS, DeterministicFakeEmbedding


def _load_pickle(path: Path) -> tuple[Any, dict[int, Any]]:
    try:
        with open(path, "rb") as f, gc_paused():
            loaded = pickle.load(f)
    except ModuleNotFoundError as exc:
        raise StoreFormatError(
            f"{path} refers to {exc.name!r}, which is not installed here: install the "
            "packages the store was saved with (pip install langchain-community) and run "
            "again."
        ) from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise StoreFormatError(
            f"{path} is not a readable LangChain FAISS pickle ({type(exc).__name__}: "
            f"{exc}). The file may be truncated or damaged: restore it from a backup; "
            "nothing was written."
        ) from exc
    if (
        not isinstance(loaded, tuple)
        or len(loaded) != 2
        or not isinstance(loaded[1], dict)
        or not hasattr(loaded[0], "search")
    ):
        raise StoreFormatError(
            f"{path} does not hold (docstore, index_to_docstore_id) as FAISS.save_local writes it."
        )
    docstore, mapping = loaded
    if sorted(mapping) != list(range(len(mapping))):
        raise StoreFormatError(f"{path}: index_to_docstore_id does not map rows 0..n-1.")
    return docstore, mapping


def _page_contents(docstore: Any, doc_ids: list[Any]) -> list[str | None]:
    """Each id's ``page_content`` (None when missing or not a string).

    An ``InMemoryDocstore`` (what ``save_local`` pickles) is read through its dict, as its
    ``search`` does, without a method call per row; other docstores through ``search``.
    """
    table = getattr(docstore, "_dict", None)
    lookup = table.get if isinstance(table, dict) else docstore.search
    contents = [getattr(lookup(i), "page_content", None) for i in doc_ids]
    return [c if isinstance(c, str) else None for c in contents]


def read_langchain_faiss(
    folder: Path, index_name: str = "index", *, allow_dangerous_deserialization: bool = False
) -> LangChainFaissStore:
    """Read a ``save_local`` folder; needs the consent to unpickle ``{index_name}.pkl``."""
    return LangChainFaissStore(
        folder, index_name, allow_dangerous_deserialization=allow_dangerous_deserialization
    )


# -- LightRAG ------------------------------------------------------------------------------
class LightRAGFaissStore(FaissIndexStore):
    """LightRAG's ``faiss_index_{namespace}.index`` + ``.index.meta.json``."""

    def __init__(self, index_path: Path) -> None:
        match = _LIGHTRAG_INDEX.match(index_path.name)
        self.namespace = match.group("namespace") if match else index_path.stem
        self.path = self.target = index_path
        self.companion = index_path.with_name(index_path.name + _LIGHTRAG_META_SUFFIX)
        self.format = "LightRAG FAISS"
        self.text_field = "content"
        if not self.companion.is_file():
            raise StoreFormatError(
                f"{index_path} has no {self.companion.name} beside it: LightRAG keeps the "
                "texts there, so the vectors cannot be rebuilt."
            )
        self._read_index(index_path)
        meta = load_json(self.companion)
        if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
            raise StoreFormatError(
                f"{self.companion} is not LightRAG FAISS metadata ({{row: record}})."
            )
        self._check_rows_match(len(meta), self.companion.name)
        try:
            records = [meta[str(i)] for i in range(self.ntotal)]
        except KeyError as exc:
            raise StoreFormatError(
                f"{self.companion} has no record for row {exc.args[0]}: the file does not "
                "match the index. Nothing was written."
            ) from exc
        self.ids = [str(r.get("__id__", i)) for i, r in enumerate(records)]
        self.texts = [r["content"] if isinstance(r.get("content"), str) else None for r in records]

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        return "faiss"  # LightRAG itself loads exactly this: faiss.read_index + the meta


def read_lightrag_faiss(path: Path) -> LightRAGFaissStore:
    """Read LightRAG's FAISS storage (the ``.index`` file or its ``.meta.json``)."""
    if path.name.endswith(".index" + _LIGHTRAG_META_SUFFIX):
        path = path.with_name(path.name[: -len(_LIGHTRAG_META_SUFFIX)])
    return LightRAGFaissStore(path)


# -- detection -------------------------------------------------------------------------------
def find_faiss_store(path: Path, *, allow_dangerous_deserialization: bool = False) -> Store | None:
    """The FAISS store at ``path`` (folder or file), or None when it is not one."""
    if path.is_file():
        if path.suffix in (".faiss", ".pkl") and path.with_suffix(".faiss").is_file():
            return read_langchain_faiss(
                path.parent,
                path.stem,
                allow_dangerous_deserialization=allow_dangerous_deserialization,
            )
        if _LIGHTRAG_INDEX.match(path.name) or (
            path.name.startswith("faiss_index_")
            and path.name.endswith(".index" + _LIGHTRAG_META_SUFFIX)
        ):
            return read_lightrag_faiss(path)
        return None
    if not path.is_dir():
        return None
    langchain = sorted(p.stem for p in path.glob("*.faiss") if p.with_suffix(".pkl").is_file())
    lightrag = sorted(
        p.name
        for p in path.glob("faiss_index_*.index")
        if p.with_name(p.name + _LIGHTRAG_META_SUFFIX).is_file()
    )
    if len(langchain) + len(lightrag) > 1:
        listing = ", ".join([f"{n}.faiss" for n in langchain] + lightrag)
        raise StoreFormatError(
            f"{path} holds several FAISS indexes ({listing}): name the one to migrate, "
            f"e.g. {path / (langchain[0] + '.faiss' if langchain else lightrag[0])}."
        )
    if langchain:
        return read_langchain_faiss(
            path, langchain[0], allow_dangerous_deserialization=allow_dangerous_deserialization
        )
    if lightrag:
        return read_lightrag_faiss(path / lightrag[0])
    return None
