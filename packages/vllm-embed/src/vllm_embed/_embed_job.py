"""Embed a corpus file by file: Parquet / JSONL in, a directory of Parquet parts out.

Streaming: rows are read ``read_rows`` at a time (pyarrow for Parquet, line by line for
JSONL), embedded and appended to the current part file, so memory does not grow with the
corpus. Each input file becomes parts of at most ``part_rows`` rows,
``part-<input>-<chunk>.parquet``; a part is written under a temporary name and renamed
when complete, then recorded in ``_manifest.json``. A re-run with the same settings skips
every recorded part (resume); other settings are refused instead of mixing vectors.

With Ray (``run_ray``) the unit of work is a whole input file: Ray Data reads it, the
actors of :func:`vllm_embed_ray.embed_dataset` embed it, its parts are written to a
staging directory, renamed into place and recorded together.

pyarrow is an optional dependency (``pip install 'vllm-embed[parquet]'``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vllm_embed._client import EmbeddingClient
from vllm_embed._errors import (
    ConfigValueError,
    InvalidRowError,
    MissingDependencyError,
    StoreFormatError,
)

__all__ = [
    "MANIFEST",
    "EmbedJob",
    "JobSettings",
    "bad_row_error",
    "find_inputs",
    "require_pyarrow",
    "vectors_to_arrow",
]

MANIFEST = "_manifest.json"
FORMAT = "vllm-embed-embed/1"
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_PREVIEW_CHARS = 60
_PREVIEW_COLUMNS = 8

Role = Literal["document", "query", "raw"]
OnBadRow = Literal["raise", "drop"]


def require_pyarrow() -> Any:
    """Import pyarrow or say how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            "`vllm-embed embed` reads and writes Parquet with pyarrow, which is not "
            "installed. Run: pip install 'vllm-embed[parquet]'"
        ) from exc
    return pyarrow


def vectors_to_arrow(vectors: np.ndarray[Any, Any], dim: int) -> Any:
    """The vectors as Arrow's canonical fixed-shape tensor column
    (``arrow.fixed_shape_tensor``, shape ``[dim]``, float32) over their own buffer.

    Its storage is ``fixed_size_list<float>[dim]`` (what Parquet holds and other readers
    see); Ray Data hands it to ``batch_format="numpy"`` code as one 2-D float32 array.
    No float becomes a Python object.
    """
    pa = require_pyarrow()
    flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    storage = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dim)
    return pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.float32(), [dim]), storage)


def _preview(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _PREVIEW_CHARS:
        return value[:_PREVIEW_CHARS] + "…"
    if isinstance(value, bytes) and len(value) > _PREVIEW_CHARS:
        return value[:_PREVIEW_CHARS] + b"..."
    if isinstance(value, list | tuple) and len(value) > 8:
        return [*value[:8], "…"]
    return value


def bad_row_error(
    row: dict[str, Any], column: str, *, location: str | None = None
) -> InvalidRowError:
    """The :class:`InvalidRowError` for a row whose text is missing or not a string."""
    value = row.get(column)
    shown = {k: _preview(v) for k, v in list(row.items())[:_PREVIEW_COLUMNS]}
    what = "no text (null or missing)" if value is None else f"type {type(value).__name__}"
    where = f" {location}" if location else ""
    return InvalidRowError(
        f"Row{where} has {what} in column {column!r}, not a string: {shown!r}. Fix or "
        "remove the row, or pass on_bad_row='drop' (CLI: --on-bad-row drop) to leave "
        "such rows out.",
        row=shown,
        column=column,
        location=location,
    )


def find_inputs(path: Path) -> list[Path]:
    """The input files: ``path`` itself, or the Parquet/JSONL files in a directory."""
    if path.is_dir():
        found = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES + JSONL_SUFFIXES
        )
        if not found:
            raise ConfigValueError(f"{path} holds no .parquet or .jsonl files to embed.")
        return found
    if not path.is_file():
        raise ConfigValueError(f"Input {path} does not exist.")
    if path.suffix.lower() not in PARQUET_SUFFIXES + JSONL_SUFFIXES:
        raise ConfigValueError(
            f"Input {path}: only Parquet (.parquet) and JSON Lines (.jsonl, .ndjson, .json) "
            "files can be embedded."
        )
    return [path]


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def count_rows(path: Path) -> int:
    """Rows in one input (Parquet metadata, or non-blank JSONL lines) without loading it."""
    if _is_parquet(path):
        pq = require_pyarrow().parquet
        return int(pq.ParquetFile(path).metadata.num_rows)
    rows = 0
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                rows += 1
    return rows


@dataclass
class _Chunk:
    """Rows read from one input: the table and where each row came from."""

    table: Any
    locations: list[str]
    #: JSONL only: row index -> the text field's original value when it was not a string
    #: (the table holds null there, so one column keeps one Arrow type).
    originals: dict[int, Any] = field(default_factory=dict)


def _iter_parquet(path: Path, read_rows: int) -> Iterator[_Chunk]:
    pa = require_pyarrow()
    first = 0
    for batch in pa.parquet.ParquetFile(path).iter_batches(batch_size=read_rows):
        table = pa.Table.from_batches([batch])
        locations = [f"{path.name} row {first + i}" for i in range(table.num_rows)]
        first += table.num_rows
        yield _Chunk(table, locations)


def _iter_jsonl(path: Path, read_rows: int, column: str) -> Iterator[_Chunk]:
    pa = require_pyarrow()
    rows: list[dict[str, Any]] = []
    locations: list[str] = []
    originals: dict[int, Any] = {}
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise StoreFormatError(f"{where} is not valid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise StoreFormatError(
                    f"{where} is a JSON {type(row).__name__}, not an object with fields."
                )
            text = row.get(column)
            if text is not None and not isinstance(text, str):
                originals[len(rows)] = text
                row[column] = None
            rows.append(row)
            locations.append(where)
            if len(rows) >= read_rows:
                yield _Chunk(_table_from_rows(pa, rows, where), locations, originals)
                rows, locations, originals = [], [], {}
    if rows:
        yield _Chunk(_table_from_rows(pa, rows, locations[-1]), locations, originals)


def _table_from_rows(pa: Any, rows: list[dict[str, Any]], where: str) -> Any:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        # Mixed types in one field (a text that is a number, ...): keep every value as
        # Python sees it so the text check below can name the row.
        names = list(dict.fromkeys(k for row in rows for k in row))
        try:
            columns = {n: pa.array([_as_text(r.get(n)) for r in rows]) for n in names}
            return pa.table(columns)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise StoreFormatError(
                f"Rows up to {where} have fields of mixed types Arrow cannot hold ({exc}); "
                "convert the file to Parquet with one type per column."
            ) from exc


def _as_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def iter_input(path: Path, read_rows: int, column: str) -> Iterator[_Chunk]:
    if _is_parquet(path):
        return _iter_parquet(path, read_rows)
    return _iter_jsonl(path, read_rows, column)


@dataclass
class JobSettings:
    """What decides the output: a resumed run must match these exactly."""

    column: str = "text"
    output_column: str = "embedding"
    role: Role = "document"
    on_bad_row: OnBadRow = "raise"
    part_rows: int = 100_000
    mode: str = "local"

    def check(self) -> None:
        if self.role not in ("document", "query", "raw"):
            raise ConfigValueError(f"role must be document, query or raw, got {self.role!r}")
        if self.on_bad_row not in ("raise", "drop"):
            raise ConfigValueError(f"on_bad_row must be raise or drop, got {self.on_bad_row!r}")
        if self.part_rows < 1:
            raise ConfigValueError(f"part_rows must be positive, got {self.part_rows}")


@dataclass
class _Manifest:
    path: Path
    settings: dict[str, Any]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    done_inputs: list[int] = field(default_factory=list)

    def save(self) -> None:
        data = {
            "format": FORMAT,
            "settings": self.settings,
            "parts": self.parts,
            "done_inputs": sorted(self.done_inputs),
            "complete": len(self.done_inputs) == len(self.settings["inputs"]),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


def _fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def part_name(input_index: int, chunk: int) -> str:
    return f"part-{input_index:05d}-{chunk:05d}.parquet"


@dataclass
class JobResult:
    rows: int = 0
    dropped: int = 0
    skipped_parts: int = 0
    written_parts: int = 0


class EmbedJob:
    """One ``vllm-embed embed`` run over ``inputs`` into the ``output`` directory."""

    def __init__(
        self,
        inputs: list[Path],
        output: Path,
        settings: JobSettings,
        client: EmbeddingClient,
        *,
        read_rows: int = 1024,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        settings.check()
        self.inputs = inputs
        self.output = output
        self.settings = settings
        self.client = client
        self.read_rows = max(1, min(read_rows, settings.part_rows))
        self.on_rows = on_rows or (lambda n: None)
        self.totals = [count_rows(p) for p in inputs]
        self.manifest = self._open_manifest()
        self.result = JobResult()

    # ------------------------------------------------------------------ manifest
    def _expected_settings(self) -> dict[str, Any]:
        s = self.settings
        return {
            "column": s.column,
            "output_column": s.output_column,
            "role": s.role,
            "on_bad_row": s.on_bad_row,
            "part_rows": s.part_rows,
            "mode": s.mode,
            "model": self.client.model_name(),
            "inputs": [_fingerprint(p) for p in self.inputs],
        }

    def _open_manifest(self) -> _Manifest:
        require_pyarrow()
        expected = self._expected_settings()
        path = self.output / MANIFEST
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise StoreFormatError(f"{path} is not a vllm-embed embed manifest.")
            old = data.get("settings", {})
            changed = sorted(k for k in expected if old.get(k) != expected[k])
            if changed:
                raise ConfigValueError(
                    f"{self.output} holds an embed job with other settings ({', '.join(changed)} "
                    "differ). Re-run with the same settings to resume, or choose a new OUTPUT "
                    "directory (or delete this one) to start over."
                )
            return _Manifest(path, old, dict(data.get("parts", {})), list(data["done_inputs"]))
        if self.output.exists() and any(self.output.iterdir()):
            raise ConfigValueError(
                f"{self.output} exists and is not an embed output (no {MANIFEST}); choose an "
                "empty or new OUTPUT directory."
            )
        self.output.mkdir(parents=True, exist_ok=True)
        manifest = _Manifest(path, expected)
        manifest.save()
        return manifest

    @property
    def total_rows(self) -> int:
        return sum(self.totals)

    @property
    def done_rows(self) -> int:
        return sum(int(p["read"]) for p in self.manifest.parts.values())

    def _parts_of(self, index: int) -> int:
        return sum(1 for p in self.manifest.parts.values() if p["input"] == index)

    # ------------------------------------------------------------------ local run
    def run(self) -> JobResult:
        for index, path in enumerate(self.inputs):
            if index in self.manifest.done_inputs:
                self.result.skipped_parts += self._parts_of(index)
                continue
            self._run_input(index, path)
            self.manifest.done_inputs.append(index)
            self.manifest.save()
        return self.result

    def _run_input(self, index: int, path: Path) -> None:
        part_rows = self.settings.part_rows
        writer: _PartWriter | None = None
        row = 0  # rows of this input read so far
        for chunk in iter_input(path, self.read_rows, self.settings.column):
            start = 0
            while start < chunk.table.num_rows:
                part = row // part_rows
                take = min(chunk.table.num_rows - start, part_rows - row % part_rows)
                name = part_name(index, part)
                if name in self.manifest.parts:  # finished by an earlier run
                    if row % part_rows == 0:
                        self.result.skipped_parts += 1
                else:
                    if writer is None:
                        writer = _PartWriter(self.output, name)
                    table = chunk.table.slice(start, take)
                    originals = {
                        i - start: v
                        for i, v in chunk.originals.items()
                        if start <= i < start + take
                    }
                    locations = chunk.locations[start : start + take]
                    writer.add(self._embed(table, locations, originals))
                    writer.read += take
                    self.on_rows(take)
                start += take
                row += take
                if row % part_rows == 0 and writer is not None:
                    self._finish(writer, index, part)
                    writer = None
        if writer is not None:
            self._finish(writer, index, (row - 1) // part_rows)

    def _finish(self, writer: _PartWriter, index: int, chunk: int) -> None:
        writer.close()
        self.manifest.parts[writer.name] = {
            "input": index,
            "chunk": chunk,
            "rows": writer.rows,
            "read": writer.read,
        }
        self.manifest.save()
        self.result.written_parts += 1

    def _embed(self, table: Any, locations: list[str], originals: dict[int, Any]) -> Any:
        pa = require_pyarrow()
        s = self.settings
        if s.column not in table.column_names:
            raise ConfigValueError(
                f"{locations[0] if locations else 'the input'}: no column {s.column!r} "
                f"(columns: {table.column_names}); pass --column <the text column>."
            )
        texts: list[Any] = table.column(s.column).to_pylist()
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            if s.on_bad_row == "raise":
                first = bad[0]
                row = table.slice(first, 1).to_pylist()[0]
                if first in originals:
                    row[s.column] = originals[first]
                raise bad_row_error(row, s.column, location=f"at {locations[first]}")
            keep = np.ones(len(texts), dtype=bool)
            keep[bad] = False
            table = table.filter(pa.array(keep))
            texts = [texts[i] for i in np.flatnonzero(keep)]
            self.result.dropped += len(bad)
        if texts:
            vectors = self.client.embed_with_info(texts, kind=s.role).vectors
        else:  # every row dropped: keep the columns (and the dimension) all the same
            vectors = np.empty((0, self.client.dimension()), dtype=np.float32)
        column = vectors_to_arrow(vectors, int(vectors.shape[1]))
        self.result.rows += len(texts)
        if s.output_column in table.column_names:
            position = table.column_names.index(s.output_column)
            return table.set_column(position, s.output_column, column)
        return table.append_column(s.output_column, column)

    # ------------------------------------------------------------------ Ray run
    def run_ray(self, embed: Callable[[Any], Any], read: Callable[[Path], Any]) -> JobResult:
        """Each input not yet done: ``embed(read(path))`` written by Ray, then recorded.

        ``read`` makes a Ray Dataset of one input file, ``embed`` adds the vectors.
        """
        pq = require_pyarrow().parquet
        for index, path in enumerate(self.inputs):
            if index in self.manifest.done_inputs:
                self.result.skipped_parts += self._parts_of(index)
                continue
            staging = self.output / f".staging-{index:05d}"
            if staging.exists():
                shutil.rmtree(staging)
            embed(read(path)).write_parquet(str(staging))
            written = sorted(p for p in staging.iterdir() if p.suffix == ".parquet")
            rows = 0
            for chunk, file in enumerate(written):
                name = part_name(index, chunk)
                n = int(pq.ParquetFile(file).metadata.num_rows)
                os.replace(file, self.output / name)
                self.manifest.parts[name] = {"input": index, "chunk": chunk, "rows": n}
                rows += n
                self.result.written_parts += 1
            read_rows = self.totals[index]
            for chunk in range(len(written)):  # rows read are counted on the first part
                self.manifest.parts[part_name(index, chunk)]["read"] = (
                    read_rows if chunk == 0 else 0
                )
            self.manifest.done_inputs.append(index)
            self.manifest.save()
            shutil.rmtree(staging)
            self.result.rows += rows
            self.result.dropped += read_rows - rows
            self.on_rows(read_rows)
        return self.result


class _PartWriter:
    """One part file, written under a temporary name and renamed when complete."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.final = directory / name
        self.tmp = directory / f".{name}.tmp"
        self.writer: Any = None
        self.schema: Any = None
        self.rows = 0
        self.read = 0

    def add(self, table: Any) -> None:
        pq = require_pyarrow().parquet
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except Exception as exc:  # pyarrow raises several kinds here
                raise StoreFormatError(
                    f"Rows of {self.name} do not fit the columns of the rows before them "
                    f"({exc}); convert the input to Parquet with one type per column."
                ) from exc
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            os.replace(self.tmp, self.final)
