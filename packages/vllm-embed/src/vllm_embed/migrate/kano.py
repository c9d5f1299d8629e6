"""kano-backlog's SQLite vector index (``kano-backlog embedding build`` / ``chunks
build-repo-vectors``; the Python store of early 2026).

Layout, in ``.cache/vectors/`` (the repo corpus uses collection ``repo_chunks``)::

    {collection}.{sha256(embedding_space_id)[:12]}.sqlite3
    {collection}.{sha256(embedding_space_id)[:12]}.meta.json

``embedding_space_id`` is ``corpus:repo|emb:{provider}:{model}:d{dim}|tok:...|chunk:...|
metric:...``; kano finds its index by hashing the id of its configuration, so a
re-embedded index is written under the hash of the NEW id. Tables: ``meta(key, value)``
(``dims``, ``metric``, ``storage_format``, ``embedding_space_id``, ``schema_version``),
``{collection}_chunks(chunk_id, text, metadata_json, vector_json)`` (``binary``: raw
native float32 bytes; ``json``: JSON text; ``metadata_json`` carries
``embedding_model`` and ``embedding_dimension``) and, when sqlite-vec was loadable, a
``vec0`` table ``{collection}_vec(chunk_id TEXT PRIMARY KEY, embedding FLOAT[dims])``.

The new id replaces only the ``emb`` component: ``{provider}:{new model}:d{new dim}``.
The provider stays ``openai`` (kano's OpenAI-compatible provider, the one its vLLM guide
configures); an index made by any other provider gets ``openai`` too, because the new
vectors come from an OpenAI-compatible server and kano must be configured that way to
query them. Everything else (corpus, tokenizer, chunking, metric) is kept.

The migrated index is a copy of the old file with ``meta``, every row's vector and
``metadata_json`` model/dimension, and the ``vec0`` table (rebuilt at the new dimension)
updated, plus the embedding-space record in ``meta`` under ``SPACE_KEY``; the
``.meta.json`` is rewritten for the new id. The old pair is renamed to
``{collection}.{old hash}.d{old dim}.bak.sqlite3`` / ``.bak.meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vllm_embed._errors import MigrationError, StoreFormatError

from ._jsonio import fsync_dir, fsync_file
from ._space import SPACE_KEY, EmbeddingSpace
from ._store import F32Matrix, Rows, Store, check_rows

__all__ = [
    "KanoStore",
    "find_kano_index",
    "kano_file_name",
    "looks_like_kano",
    "new_space_id",
    "read_kano",
    "space_components",
]

DB_SUFFIX = ".sqlite3"
META_SUFFIX = ".meta.json"
#: kano's provider for OpenAI-compatible servers (vLLM, Ollama, TEI), per its vLLM guide.
PROVIDER = "openai"
_SAMPLE = 16


def kano_file_name(collection: str, space_id: str) -> str:
    """``{collection}.{sha256(space_id)[:12]}.sqlite3``."""
    digest = hashlib.sha256(space_id.encode("utf-8")).hexdigest()[:12]
    return f"{collection}.{digest}{DB_SUFFIX}"


def meta_json_path(db: Path) -> Path:
    """``x.abc.sqlite3`` -> ``x.abc.meta.json``."""
    return db.with_name(db.name[: -len(DB_SUFFIX)] + META_SUFFIX)


def space_components(space_id: str) -> dict[str, str]:
    """The space id split on ``|`` then at the first ``:`` (as kano's meta.json has them)."""
    parts: dict[str, str] = {}
    for segment in space_id.split("|"):
        if ":" in segment:
            key, value = segment.split(":", 1)
            parts[key] = value
    return parts


def new_space_id(old: str, model: str, dim: int) -> str:
    """``old`` with its ``emb`` component replaced by ``openai:{model}:d{dim}``."""
    segments = old.split("|")
    emb = f"emb:{PROVIDER}:{model}:d{dim}"
    out = [emb if s.startswith("emb:") else s for s in segments]
    if emb not in out:
        out.insert(1 if out and out[0].startswith("corpus:") else 0, emb)
    return "|".join(out)


def looks_like_kano(path: Path) -> bool:
    """A ``.sqlite3`` file (not Chroma's) or a kano ``.meta.json``."""
    if path.is_file() and path.name.endswith(META_SUFFIX):
        return True
    return path.is_file() and path.suffix == DB_SUFFIX and path.name != "chroma.sqlite3"


def find_kano_index(path: Path, collection: str | None = None) -> Path | None:
    """The kano ``.sqlite3`` a path names: the file, its meta.json, or a directory
    (``.cache/vectors/``) holding exactly one index (of ``collection`` if given)."""
    if path.is_file() and path.name.endswith(META_SUFFIX):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreFormatError(f"{path}: not a readable kano meta.json ({exc}).") from exc
        name = meta.get("database") if isinstance(meta, dict) else None
        db = path.with_name(name) if isinstance(name, str) else None
        if db is None or not db.is_file():
            db = path.with_name(path.name[: -len(META_SUFFIX)] + DB_SUFFIX)
        if not db.is_file():
            raise StoreFormatError(f"{path}: its SQLite index {db.name} is missing.")
        return db
    if path.is_file() and path.suffix == DB_SUFFIX:
        return path
    if not path.is_dir():
        return None
    found = sorted(
        p
        for p in path.glob(f"*{DB_SUFFIX}")
        if meta_json_path(p).is_file() and ".bak" not in p.name
    )
    if collection is not None:
        found = [p for p in found if p.name.split(".", 1)[0] == collection]
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise StoreFormatError(
            f"{path} holds several kano indexes ({names}): give the .sqlite3 file to migrate"
            + ("" if collection else ", or --collection NAME")
            + "."
        )
    return found[0]


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def vec_sqlite() -> Any:
    """A DB-API sqlite module that can load sqlite-vec: the standard library's when this
    Python was built with loadable extensions, else ``pysqlite3`` (pysqlite3-binary)."""
    try:
        import sqlite_vec  # noqa: F401
    except ImportError as exc:
        raise MigrationError(_NEEDS_SQLITE_VEC) from exc
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        from pysqlite3 import dbapi2
    except ImportError as exc:
        raise MigrationError(_NEEDS_LOADABLE) from exc
    return dbapi2


def connect_vec(path: Path, *, read_only: bool = False) -> Any:
    """A connection with sqlite-vec loaded."""
    import sqlite_vec

    module = vec_sqlite()
    conn = module.connect(f"file:{path}?mode=ro", uri=True) if read_only else module.connect(path)
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    finally:
        conn.enable_load_extension(False)
    return conn


class KanoStore(Store):
    """A kano SQLite index read for migration."""

    def __init__(
        self,
        path: Path,
        collection: str,
        meta: dict[str, str],
        meta_json: dict[str, Any] | None,
        ids: list[str],
        texts: list[str | None],
        has_vec: bool,
        vec_sql: str,
    ) -> None:
        self.path = self.target = path
        self.collection = collection
        self.meta = meta
        self.meta_json = meta_json
        self.ids = ids
        self.texts = texts
        self.has_vec = has_vec
        self._vec_sql = vec_sql
        self.storage_format = meta.get("storage_format", "binary")
        self.metric = meta.get("metric", "cosine")
        self.old_dim = int(meta["dims"])
        self.space_id = meta.get("embedding_space_id", "")
        vec = " + vec0" if has_vec else ""
        self.format = f"kano-backlog SQLite index ({self.storage_format}{vec}; {collection})"
        self.text_field = f"{collection}_chunks.text"
        self._space: EmbeddingSpace | None = None
        self._final: Path | None = None

    @property
    def chunks_table(self) -> str:
        return f'"{self.collection}_chunks"'

    @property
    def vec_table(self) -> str:
        return f'"{self.collection}_vec"'

    def source_files(self) -> list[Path]:
        side = meta_json_path(self.path)
        return [self.path, side] if side.is_file() else [self.path]

    def backup_path(self) -> Path:
        stem = self.path.name[: -len(DB_SUFFIX)]
        candidate = self.path.with_name(f"{stem}.d{self.old_dim}.bak{DB_SUFFIX}")
        n = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{stem}.d{self.old_dim}.bak{n}{DB_SUFFIX}")
            n += 1
        return candidate

    # -- space ---------------------------------------------------------------------------
    def record_space(self, out: Path, space: EmbeddingSpace) -> None:
        """Kept for `write`: the record goes into the ``meta`` table."""
        self._space = space

    def recorded_space(self) -> EmbeddingSpace | None:
        value = self.meta.get(SPACE_KEY)
        return EmbeddingSpace.from_json(value) if value else None

    def sample_vectors(self, count: int) -> tuple[list[str], F32Matrix] | None:
        texts: list[str] = []
        rows: list[F32Matrix] = []
        with _connect_ro(self.path) as conn:
            cursor = conn.execute(
                f"SELECT text, vector_json FROM {self.chunks_table} ORDER BY rowid LIMIT ?",
                (max(count * 2, count),),
            )
            for text, raw in cursor:
                if isinstance(text, str) and text.strip() and len(texts) < count:
                    texts.append(text)
                    rows.append(self._decode(raw, 0))
        conn.close()
        if not texts:
            return None
        return texts, np.stack(rows)

    def _decode(self, raw: Any, row: int) -> F32Matrix:
        try:
            if isinstance(raw, bytes):
                vector = np.frombuffer(raw, dtype=np.float32)  # native order, as kano packs it
            else:
                vector = np.asarray(json.loads(raw), dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise StoreFormatError(f"{self.path}: row {row} has an unreadable vector.") from exc
        return vector

    def new_space_id(self, model: str, dim: int) -> str:
        return new_space_id(self.space_id, model, dim)

    # -- writing -------------------------------------------------------------------------
    def write(self, out: Path, keep: Sequence[int], rows: Rows) -> None:
        if self._space is None:
            raise MigrationError("kano: the new embedding space is needed before writing")
        model, dim = self._space.model, rows.dim
        space_id = self.new_space_id(model, dim)
        shutil.copy2(self.path, out)
        conn = connect_vec(out) if self.has_vec else sqlite3.connect(out)
        try:
            conn.execute("BEGIN")
            self._rewrite(conn, keep, rows, model)
            meta = {
                "dims": str(dim),
                "embedding_space_id": space_id,
                SPACE_KEY: self._space.to_json(),
            }
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items())
            )
            conn.commit()
        finally:
            conn.close()
        fsync_file(out)
        document = self._meta_json(space_id, dim, out)
        pending = _pending_meta(out)
        pending.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
        fsync_file(pending)

    def _rewrite(self, conn: Any, keep: Sequence[int], rows: Rows, model: str) -> None:
        kept = set(keep)
        dropped = [(self.ids[i],) for i in range(len(self.ids)) if i not in kept]
        conn.executemany(f"DELETE FROM {self.chunks_table} WHERE chunk_id = ?", dropped)
        if self.has_vec:
            conn.execute(f"DROP TABLE IF EXISTS {self.vec_table}")
            conn.execute(self._vec_create(rows.dim))
        order = iter(keep)
        for block in rows.blocks(4096):
            ids = [self.ids[next(order)] for _ in range(len(block))]
            metas = dict(
                conn.execute(
                    f"SELECT chunk_id, metadata_json FROM {self.chunks_table} "
                    f"WHERE chunk_id IN ({','.join('?' * len(ids))})",
                    ids,
                ).fetchall()
            )
            updates = []
            for chunk_id, vector in zip(ids, block, strict=True):
                updates.append(
                    (
                        self._encode(vector),
                        _new_metadata(metas.get(chunk_id), model, rows.dim),
                        chunk_id,
                    )
                )
            conn.executemany(
                f"UPDATE {self.chunks_table} SET vector_json = ?, metadata_json = ? "
                "WHERE chunk_id = ?",
                updates,
            )
            if self.has_vec:
                conn.executemany(
                    f"INSERT INTO {self.vec_table} (chunk_id, embedding) VALUES (?, ?)",
                    [
                        (cid, v.astype(np.float32).tobytes())
                        for cid, v in zip(ids, block, strict=True)
                    ],
                )

    def _encode(self, vector: F32Matrix) -> bytes | str:
        if self.storage_format == "binary":
            return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        return json.dumps([float(x) for x in vector], separators=(",", ":"), ensure_ascii=True)

    def _vec_create(self, dim: int) -> str:
        """The old ``CREATE VIRTUAL TABLE`` with the new dimension (same columns, options)."""
        import re

        sql, n = re.subn(r"(?i)float\[\s*\d+\s*\]", f"FLOAT[{dim}]", self._vec_sql, count=1)
        if n != 1:
            raise StoreFormatError(
                f"{self.path}: cannot find the vector column in {self.vec_table}: {self._vec_sql}"
            )
        return sql

    def _meta_json(self, space_id: str, dim: int, out: Path) -> dict[str, Any]:
        name = kano_file_name(self.collection, space_id)
        old = dict(self.meta_json or {})
        config = dict(old.get("config") or {})
        config.update(
            {"dimensions": dim, "metric": self.metric, "storage_format": self.storage_format}
        )
        document: dict[str, Any] = {
            **old,
            "database": name,
            "collection": self.collection,
            "embedding_space_id": space_id,
            "hash": name[len(self.collection) + 1 : -len(DB_SUFFIX)],
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "config": config,
            "components": space_components(space_id),
        }
        return document

    # -- checking --------------------------------------------------------------------------
    def check_written(self, path: Path, ids: Sequence[str], dim: int) -> None:
        where = f"written kano index {path}"
        conn = _connect_ro(path)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("dims") != str(dim):
                raise StoreFormatError(f"{where}: meta dims is {meta.get('dims')}, expected {dim}")
            model = self._space.model if self._space else ""
            if meta.get("embedding_space_id") != self.new_space_id(model, dim):
                raise StoreFormatError(f"{where}: meta embedding_space_id was not updated")
            got: list[str] = []
            cursor = conn.execute(
                f"SELECT chunk_id, metadata_json, vector_json FROM {self.chunks_table} "
                "ORDER BY rowid"
            )
            for n, (chunk_id, metadata, raw) in enumerate(cursor):
                got.append(chunk_id)
                vector = self._decode(raw, n)
                if vector.shape != (dim,):
                    raise StoreFormatError(f"{where}: row {n} has {vector.shape[0]} values")
                check_rows(vector[None, :], where, n)
                data = json.loads(metadata) if metadata else {}
                if "embedding_dimension" in data and data["embedding_dimension"] != dim:
                    raise StoreFormatError(f"{where}: row {n} metadata_json keeps the old dim")
            if got != list(ids):
                raise StoreFormatError(f"{where}: chunk ids differ from the source")
        finally:
            conn.close()

    def check_with_library(self, path: Path, ids: Sequence[str], dim: int) -> str | None:
        """With a vec0 table: sqlite-vec's KNN returns each probed chunk first."""
        if not self.has_vec or not ids:
            return None
        conn = connect_vec(path, read_only=True)
        try:
            count = conn.execute(f"SELECT count(*) FROM {self.vec_table}").fetchone()[0]
            if count != len(ids):
                raise StoreFormatError(f"{path}: the vec0 table holds {count} rows, not {len(ids)}")
            raw = conn.execute(
                f"SELECT vector_json FROM {self.chunks_table} WHERE chunk_id = ?", (ids[0],)
            ).fetchone()[0]
            probe = self._decode(raw, 0).astype(np.float32).tobytes()
            hit = conn.execute(
                f"SELECT chunk_id FROM {self.vec_table} WHERE embedding MATCH ? AND k = 1",
                (probe,),
            ).fetchone()
            if hit is None or hit[0] != ids[0]:
                raise StoreFormatError(f"sqlite-vec cannot query the vec0 table in {path}")
        finally:
            conn.close()
        return "sqlite-vec"

    # -- installing ------------------------------------------------------------------------
    installs_itself = True

    def final_path(self, target: Path) -> Path:
        return self._final or target

    def install(self, new: Path, target: Path, *, in_place: bool) -> Path | None:
        """Put the new pair under kano's name for the new space; old pair -> ``.bak``."""
        if self._space is None:
            raise MigrationError("kano: the new embedding space is needed to name the index")
        model, dim = self._space.model, self._space.dimension
        name = kano_file_name(self.collection, self.new_space_id(model, dim))
        directory = target.parent if in_place else target
        if not in_place:
            directory.mkdir(parents=True, exist_ok=False)
        final = directory / name
        if final.exists() and final.resolve() != self.path.resolve():
            raise MigrationError(
                f"{final} already exists (an index for the new embedding space). Move it away "
                "and run the same command again; the embedded vectors are kept and nothing is "
                "sent twice."
            )
        if final.resolve() == self.path.resolve():
            raise MigrationError(
                f"the new embedding space id is the same as the old one ({self.space_id}): "
                "nothing to migrate."
            )
        os.replace(_pending_meta(new), meta_json_path(final))
        os.replace(new, final)
        fsync_dir(directory)
        self._final = final
        if not in_place:
            return None
        backup = self.backup_path()
        side = meta_json_path(self.path)
        if side.is_file():
            os.replace(side, meta_json_path(backup))
        os.replace(self.path, backup)
        fsync_dir(self.path.parent)
        return backup


_NEEDS_SQLITE_VEC = (
    "this kano index has a sqlite-vec (vec0) table, which can only be rebuilt with the "
    "sqlite-vec extension: pip install sqlite-vec, then run the same command again. Nothing "
    "was written."
)
_NEEDS_LOADABLE = (
    "this kano index has a sqlite-vec (vec0) table, and this Python's sqlite3 cannot load "
    "extensions: pip install pysqlite3-binary (or use a Python built with loadable SQLite "
    "extensions), then run the same command again. Nothing was written."
)


def _pending_meta(out: Path) -> Path:
    return out.with_name(out.name + META_SUFFIX)


def _new_metadata(raw: str | None, model: str, dim: int) -> str:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    data["embedding_model"] = model
    data["embedding_dimension"] = dim
    # kano writes metadata_json with sort_keys and compact separators
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# -- reading ----------------------------------------------------------------------------
def read_kano(path: Path, *, collection: str | None = None) -> KanoStore:
    """Read a kano index (the .sqlite3 file; see `find_kano_index` for other paths)."""
    db = find_kano_index(path, collection)
    if db is None:
        raise StoreFormatError(f"{path}: no kano-backlog SQLite index found.")
    with open(db, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise StoreFormatError(
                f"{db} is not an SQLite database (damaged or truncated); nothing was written. "
                "Rebuild it with kano or restore it from a backup."
            )
    side = meta_json_path(db)
    meta_json: dict[str, Any] | None = None
    if side.is_file():
        try:
            loaded = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StoreFormatError(f"{side}: not valid JSON ({exc}).") from exc
        meta_json = loaded if isinstance(loaded, dict) else None
    try:
        return _read(db, meta_json, collection)
    except sqlite3.DatabaseError as exc:
        raise StoreFormatError(
            f"{db}: SQLite cannot read it ({exc}); the file is damaged or truncated. Nothing "
            "was written; rebuild it with kano or restore it from a backup."
        ) from exc


def _read(db: Path, meta_json: dict[str, Any] | None, wanted: str | None) -> KanoStore:
    conn = _connect_ro(db)
    try:
        tables = dict(
            conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        )
        if "meta" not in tables:
            raise StoreFormatError(f"{db}: no `meta` table: not a kano-backlog index.")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        collection = wanted or (meta_json or {}).get("collection") or db.name.split(".", 1)[0]
        if f"{collection}_chunks" not in tables:
            found = [t[: -len("_chunks")] for t in tables if t.endswith("_chunks")]
            raise StoreFormatError(
                f"{db}: no table {collection}_chunks (collections here: "
                f"{', '.join(found) or 'none'})."
            )
        for key in ("dims", "embedding_space_id"):
            if not meta.get(key):
                raise StoreFormatError(f"{db}: the meta table has no {key!r}.")
        try:
            dims = int(meta["dims"])
        except ValueError as exc:
            raise StoreFormatError(f"{db}: meta dims is {meta['dims']!r}.") from exc
        fmt = meta.get("storage_format", "binary")
        chunks = f'"{collection}_chunks"'
        if fmt == "binary":
            bad = conn.execute(
                f"SELECT chunk_id FROM {chunks} WHERE length(vector_json) != ? LIMIT 5",
                (dims * 4,),
            ).fetchall()
            if bad:
                raise StoreFormatError(
                    f"{db}: meta dims is {dims} but rows {', '.join(repr(b[0]) for b in bad)} "
                    f"do not hold {dims} float32 values: the index is inconsistent. Nothing was "
                    "written; rebuild it with kano or restore it."
                )
        ids: list[str] = []
        texts: list[str | None] = []
        for chunk_id, text in conn.execute(f"SELECT chunk_id, text FROM {chunks} ORDER BY rowid"):
            ids.append(str(chunk_id))
            texts.append(text if isinstance(text, str) else None)
        vec_sql = tables.get(f"{collection}_vec") or ""
        has_vec = "vec0" in vec_sql.lower()
    finally:
        conn.close()
    if has_vec:
        vec_sqlite()  # refuse now, before any request, if the vec0 table cannot be rebuilt
    return KanoStore(db, collection, meta, meta_json, ids, texts, has_vec, vec_sql)
