"""nano-vectordb JSON stores, including DVD's ``database.json`` and LightRAG's ``vdb_*.json``.

File layout (written by ``NanoVectorDB.save``)::

    {"embedding_dim": 1024,
     "data": [{"__id__": "...", ...every other field...}, ...],
     "matrix": "<base64 of float32 rows, row-major, each row L2-normalised>",
     "additional_data": {...}}          # optional, kept as-is

Variants, told apart by file name and record fields:

- DVD (video QA): text in ``caption``; ``additional_data`` holds the video info.
- LightRAG (``vdb_entities.json``, ``vdb_relationships.json``, ``vdb_chunks.json``):
  text in ``content``; newer versions keep a per-record ``vector`` =
  base64(zlib(float16 bytes of the un-normalised embedding)), rewritten here too.
- Anything else: the one string field present in every record (said so when the store
  is opened), else the text field must be named (``--text-field``).

The migrated file keeps every ``__id__``, every record field, the top-level key
order and ``additional_data``; ``embedding_dim`` and the matrix are new, and the
embedding space is recorded in ``additional_data["vllm_embed_space"]`` (the key is
added when the store had no ``additional_data``; ``get_additional_data()`` returns it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vllm_embed._errors import StoreFormatError
from vllm_embed._vectors import l2_normalize

from ._jsonio import Base64Span, Base64Writer, SyncEvery, iter_f32_rows_b64
from ._space import SPACE_KEY, EmbeddingSpace, read_sidecar
from ._store import F32Matrix, Rows, RowWriter, Store, check_rows, row_norms

__all__ = ["NanoVectorDBStore", "looks_like_nanovectordb", "read_nanovectordb"]

_LIGHTRAG_FILE = re.compile(r"^vdb_(entities|relationships|chunks)\.json$")
_RESERVED = {"__id__", "__vector__", "__metrics__", "__created_at__", "vector"}
_NORM_TOLERANCE = 1e-3


def looks_like_nanovectordb(document: Any) -> bool:
    """True for a top-level object with ``embedding_dim``, ``data`` and ``matrix``."""
    return isinstance(document, dict) and {"embedding_dim", "data", "matrix"} <= document.keys()


def encode_lightrag_vector(row: np.ndarray) -> str:
    """LightRAG's per-record ``vector`` field: base64(zlib(float16 bytes))."""
    return base64.b64encode(zlib.compress(row.astype(np.float16).tobytes())).decode("utf-8")


def decode_lightrag_vector(value: str) -> np.ndarray:
    """Inverse of `encode_lightrag_vector` (float16 array)."""
    return np.frombuffer(zlib.decompress(base64.b64decode(value)), dtype=np.float16)


class NanoVectorDBStore(Store):
    """A nano-vectordb file read for migration (the old matrix itself is never loaded)."""

    def __init__(
        self,
        path: Path,
        document: dict[str, Any],
        variant: str,
        text_field: str,
        span: Base64Span | None = None,
        text_field_reason: str = "",
    ) -> None:
        self.path = self.target = path
        self.text_field_reason = text_field_reason
        self._space: EmbeddingSpace | None = None
        self._document = document
        self._span = span
        self.variant = variant
        self.format = "nano-vectordb" if variant == "generic" else f"nano-vectordb ({variant})"
        self.text_field = text_field
        self.old_dim = int(document["embedding_dim"])
        records: list[dict[str, Any]] = document["data"]
        self._records = records
        self.ids = [str(r["__id__"]) for r in records]
        self.texts = [_text_of(r, text_field) for r in records]

    # -- the embedding space ---------------------------------------------------------------
    def stores_unit_vectors(self) -> bool:
        return True

    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`, which puts it in ``additional_data`` (no sidecar)."""
        self._space = space

    def recorded_space(self) -> EmbeddingSpace | None:
        extra = self._document.get("additional_data")
        if isinstance(extra, dict) and isinstance(extra.get(SPACE_KEY), dict):
            return EmbeddingSpace.from_dict(extra[SPACE_KEY])
        return read_sidecar(self.path)

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        wanted = [i for i, t in enumerate(self.texts) if isinstance(t, str) and t.strip()]
        wanted = wanted[:count]
        if not wanted or self.old_dim is None:
            return None
        last = wanted[-1]
        rows: list[np.ndarray] = []
        seen = 0
        for block in self.iter_matrix():
            rows.append(block)
            seen += len(block)
            if seen > last:
                break
        matrix = np.concatenate(rows)[wanted].astype(np.float32)
        return [str(self.texts[i]) for i in wanted], matrix

    # -- writing -------------------------------------------------------------------------
    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        records = [self._records[i] for i in keep]
        if any("vector" in r for r in records):
            records = _with_lightrag_vectors(records, rows)
        writer = _NanoWriter(self, out, records, rows.dim)
        writer.begin()
        try:
            for block in rows.blocks():
                writer.add(block)
            writer.finish()
        finally:
            writer.abort()

    def open_writer(self, out: Path, keep: Sequence[int], dim: int) -> RowWriter | None:
        """Stream the file while embedding, unless a record keeps its own vector (LightRAG's
        per-record ``vector`` sits in ``data``, before the matrix) or the matrix does not
        come after ``data`` and before ``additional_data`` (not nano-vectordb's order)."""
        keys = list(self._document)
        at = keys.index("matrix")
        if "data" not in keys[:at] or "additional_data" in keys[:at]:
            return None
        records = [self._records[i] for i in keep]
        if any("vector" in r for r in records):
            return None
        return _NanoWriter(self, out, records, dim)

    def warm_up(self) -> None:
        with _quiet_nano_vectordb():
            pass

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        written = read_nanovectordb(path, text_field=self.text_field, validate=False)
        where = f"written file {path}"
        if written.old_dim != dim:
            raise StoreFormatError(f"{where}: embedding_dim {written.old_dim}, expected {dim}")
        if written.ids != list(ids):
            raise StoreFormatError(f"{where}: record ids differ from the source")
        done = 0
        for block in written.iter_matrix():
            check_rows(block, where, done)
            norms = row_norms(block)
            if not np.allclose(norms, 1.0, atol=_NORM_TOLERANCE):
                raise StoreFormatError(f"{where}: matrix rows are not L2-normalised")
            done += len(block)
        _check_lightrag_vectors(where, written._records, dim)

    #: nano-vectordb's own reader gives the ids, dimension and rows to check: one read.
    library_check_is_complete = True

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """Read ``path`` with nano-vectordb's own reader (``nano_vectordb.dbs.load_storage``,
        what ``NanoVectorDB(...)`` loads with, before it normalises the rows it read) and
        check what it read: the dimension, the ids in order, finite non-zero rows (what
        its cosine query divides by) and LightRAG's per-record vectors."""
        with _quiet_nano_vectordb() as module:
            if module is None:
                return None
            reader = getattr(getattr(module, "dbs", None), "load_storage", None)
            try:
                if reader is not None:
                    storage = reader(str(path))
                else:  # another nano-vectordb layout: its constructor, then our own parser
                    db = module.NanoVectorDB(dim, storage_file=str(path))
                    storage = getattr(db, "_NanoVectorDB__storage", None)
            except (AssertionError, ValueError, KeyError, TypeError) as exc:
                raise StoreFormatError(
                    f"nano-vectordb cannot load the written file {path}: {exc!r}"
                ) from exc
            if not isinstance(storage, dict) or not {"data", "matrix"} <= storage.keys():
                self.check_written(path, ids, dim)
                return "nano-vectordb"
            if storage.get("embedding_dim") != dim:
                raise StoreFormatError(
                    f"nano-vectordb read embedding_dim {storage.get('embedding_dim')!r} from "
                    f"{path}, expected {dim}"
                )
            self._check_loaded(path, storage["data"], storage["matrix"], ids, dim)
        return "nano-vectordb"

    @staticmethod
    def _check_loaded(
        path: Path, records: list[dict[str, Any]], matrix: Any, ids: Sequence[str], dim: int
    ) -> F32Matrix:
        where = f"written file {path} (as nano-vectordb loaded it)"
        if [str(r.get("__id__")) for r in records] != list(ids):
            raise StoreFormatError(f"{where}: record ids differ from the source")
        matrix = np.asarray(matrix)
        if matrix.shape != (len(ids), dim):
            raise StoreFormatError(
                f"{where}: matrix of shape {matrix.shape}, expected {(len(ids), dim)}"
            )
        step = 65536
        for start in range(0, len(matrix), step):
            norms = row_norms(matrix[start : start + step])
            usable = np.isfinite(norms) & (norms > 0)
            if not usable.all():
                bad = start + int(np.argmin(usable))
                raise StoreFormatError(f"{where}: row {bad} is zero, NaN or inf")
        _check_lightrag_vectors(where, records, dim)
        out: F32Matrix = matrix
        return out

    # -- helpers ---------------------------------------------------------------------------
    def iter_matrix(self) -> Iterator[np.ndarray]:
        """The stored matrix, a block of rows at a time."""
        if self._span is not None:
            yield from iter_f32_rows_b64(self._span, self.old_dim or 1)
        else:
            raw = base64.b64decode(self._document.get("matrix") or "")
            if raw:
                yield np.frombuffer(raw, dtype="<f4").reshape(-1, self.old_dim or 1)


def read_nanovectordb(
    path: Path,
    *,
    text_field: str | None = None,
    document: dict[str, Any] | None = None,
    span: Base64Span | None = None,
    validate: bool = True,
) -> NanoVectorDBStore:
    """Read and validate a nano-vectordb file (``document``/``span`` if already parsed).

    ``validate=False`` skips the up-front base64 check of the matrix (for a file about to
    be decoded anyway, which checks it strictly while decoding).
    """
    if document is None:
        from ._jsonio import load_json_with_span

        loaded, span = load_json_with_span(
            path, "matrix", validate=validate, expected_length=matrix_b64_length
        )
        if not looks_like_nanovectordb(loaded):
            raise StoreFormatError(
                f"{path} is not a nano-vectordb file (needs embedding_dim, data and matrix)."
            )
        document = loaded
    _validate_layout(path, document, span)
    variant, field, reason = _choose_text_field(path, document["data"], text_field)
    return NanoVectorDBStore(path, document, variant, field, span, reason)


def matrix_b64_length(before: dict[str, Any]) -> int | None:
    """The base64 length of the matrix that ``embedding_dim`` and ``data`` describe."""
    dim, data = before.get("embedding_dim"), before.get("data")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0 or not isinstance(data, list):
        return None
    return 4 * ((len(data) * dim * 4 + 2) // 3)


def _validate_layout(path: Path, document: dict[str, Any], span: Base64Span | None) -> None:
    dim = document["embedding_dim"]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise StoreFormatError(f"{path}: embedding_dim must be a positive integer, got {dim!r}.")
    data = document["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) and "__id__" in r for r in data):
        raise StoreFormatError(f"{path}: `data` must be a list of records that each have __id__.")
    if span is not None:
        nbytes = span.decoded_size
    else:
        matrix = document["matrix"]
        if not isinstance(matrix, str):
            raise StoreFormatError(f"{path}: `matrix` must be a base64 string.")
        try:
            nbytes = len(base64.b64decode(matrix, validate=True))
        except ValueError as exc:
            raise StoreFormatError(
                f"{path}: the matrix is not valid base64: the file is damaged. Restore it "
                "from a backup; nothing was written."
            ) from exc
    row_bytes = dim * 4
    if nbytes % row_bytes:
        raise StoreFormatError(
            f"{path}: embedding_dim is {dim} but the matrix holds {nbytes // 4} floats, which "
            f"is not a whole number of rows of {dim}: the declared dimension does not match the "
            "matrix (or the matrix is truncated). Nothing was written; restore the file or fix "
            "embedding_dim."
        )
    rows = nbytes // row_bytes
    if rows != len(data):
        raise StoreFormatError(
            f"{path}: the matrix has {rows} rows of dimension {dim} but `data` has {len(data)} "
            "records: the matrix is truncated or the file was edited by hand. Nothing was "
            "written; restore the file from a backup."
        )


def _choose_text_field(
    path: Path, records: list[dict[str, Any]], text_field: str | None
) -> tuple[str, str, str]:
    """(variant, text field, why that field when it was inferred from the records)."""
    lightrag = _LIGHTRAG_FILE.match(path.name) is not None
    if text_field is not None:
        variant = "LightRAG" if lightrag else "generic"
        return variant, text_field, ""
    fields = Counter(k for r in records for k in r)
    if lightrag or (fields["content"] and (fields["vector"] or fields["__created_at__"])):
        return "LightRAG", "content", ""
    if fields["caption"] or (path.name == "database.json" and not records):
        return "DVD database.json", "caption", ""
    if not records:
        return "generic", "content", ""
    candidates = Counter(
        k for r in records for k, v in r.items() if isinstance(v, str) and k not in _RESERVED
    )
    everywhere = [k for k, n in candidates.items() if n == len(records)]
    if len(everywhere) == 1:
        reason = "the only string field present in every record; choose another with --text-field"
        return "generic", everywhere[0], reason
    listing = ", ".join(f"{k} ({n} of {len(records)} records)" for k, n in candidates.most_common())
    raise StoreFormatError(
        f"{path}: a nano-vectordb store whose text field is not known. Re-run with "
        f"--text-field NAME; string fields found: {listing or 'none'}."
    )


def _text_of(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    return value if isinstance(value, str) else None


def _check_lightrag_vectors(where: str, records: list[dict[str, Any]], dim: int) -> None:
    """LightRAG's per-record ``vector`` fields, where present: ``dim`` finite values."""
    for i, record in enumerate(records):
        if "vector" in record:
            vec = decode_lightrag_vector(record["vector"])
            if vec.shape != (dim,) or not np.isfinite(vec).all():
                raise StoreFormatError(f"{where}: record {i} has a bad `vector` field")


def _with_lightrag_vectors(records: list[dict[str, Any]], rows: Rows) -> list[dict[str, Any]]:
    out = []
    for record, row in zip(records, rows.rows(), strict=True):
        if "vector" in record:
            record = {**record, "vector": encode_lightrag_vector(row)}
        out.append(record)
    return out


class _NanoWriter(RowWriter):
    """Writes a nano-vectordb file the way ``NanoVectorDB.save`` lays it out, the matrix
    as rows arrive: ``{"embedding_dim": .., "data": [..], "matrix": "<base64 ..>", ..}``.

    The records are encoded a slice at a time, so the background thread never holds the
    GIL for the whole ``data`` list (the bytes are those of one ``json.dumps``).
    """

    _RECORDS_PER_PIECE = 2000

    def __init__(
        self, store: NanoVectorDBStore, out: Path, records: list[dict[str, Any]], dim: int
    ) -> None:
        self._store = store
        self._out = out
        self._records = records
        self._dim = dim
        items = list(store._document.items())
        at = [k for k, _ in items].index("matrix")
        self._before, self._after = items[:at], items[at + 1 :]
        self._file: BinaryIO | None = None
        self._matrix: Base64Writer | None = None
        self._sync: SyncEvery | None = None

    def begin(self) -> None:
        f = self._file = open(self._out, "wb")  # noqa: SIM115 - closed by finish/abort
        f.write(b"{")
        for key, value in self._before:
            f.write(_dumps(key) + b": ")
            if key == "embedding_dim":
                f.write(_dumps(self._dim))
            elif key == "data":
                self._write_records(f)
            else:
                f.write(_dumps(value))
            f.write(b", ")
        f.write(_dumps("matrix") + b': "')
        self._matrix = Base64Writer(f)
        self._sync = SyncEvery(f)

    def _write_records(self, f: BinaryIO) -> None:
        f.write(b"[")
        step = self._RECORDS_PER_PIECE
        for start in range(0, len(self._records), step):
            piece = b", ".join(_dumps(r) for r in self._records[start : start + step])
            f.write(b", " + piece if start else piece)
        f.write(b"]")

    def add(self, block: F32Matrix) -> None:
        assert self._sync is not None and self._matrix is not None, "begin() first"
        # The engine refused zero, NaN and inf rows before they got here.
        data = l2_normalize(block).astype("<f4", copy=False).tobytes()
        self._matrix.write(data)
        self._sync.wrote(len(data) * 4 // 3)

    def finish(self) -> None:
        assert self._file is not None and self._matrix is not None, "begin() first"
        f = self._file
        self._matrix.close()
        f.write(b'"')
        after = list(self._after)
        space = self._store._space
        if space is not None and not any(k == "additional_data" for k, _ in after):
            after.append(("additional_data", {}))
        for key, value in after:
            f.write(b", " + _dumps(key) + b": ")
            if key == "additional_data" and space is not None:
                extra = value if isinstance(value, dict) else {}
                f.write(_dumps({**extra, SPACE_KEY: space.to_dict()}))
            else:
                f.write(_dumps(value))
        f.write(b"}")
        self._file = None
        f.close()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _dumps(value: Any) -> bytes:
    """``json.dump(..., ensure_ascii=False)`` as nano-vectordb writes it, as UTF-8 bytes."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@contextlib.contextmanager
def _quiet_nano_vectordb() -> Iterator[Any]:
    """Import nano_vectordb without its ``logging.basicConfig(INFO)`` taking over the root."""
    root = logging.getLogger()
    guard = None
    if not root.handlers:
        guard = logging.NullHandler()
        root.addHandler(guard)
    try:
        import nano_vectordb
    except ImportError:
        nano_vectordb = None
    finally:
        if guard is not None:
            root.removeHandler(guard)
    logger = logging.getLogger("nano-vectordb")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield nano_vectordb
    finally:
        logger.setLevel(level)
