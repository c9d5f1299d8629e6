"""What a Chroma directory holds before any collection is read: an SQLite file that is
one, its tenants and databases, and which of its collections ``--collection`` picks."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from vllm_embed._errors import StoreFormatError

from ._client import (
    CHROMA_FILE,
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    PAGE,
    field_of,
    label,
    open_client,
)


def check_sqlite_header(file: Path) -> None:
    """A named error for a ``chroma.sqlite3`` that is not an SQLite database."""
    with open(file, "rb") as f:
        header = f.read(16)
    if header != b"SQLite format 3\x00":
        raise StoreFormatError(
            f"{file} is not an SQLite database (damaged or truncated); nothing was written. "
            "Restore the Chroma directory from a backup."
        )


def groups(copy: Path) -> list[tuple[str, str]]:
    """Every (tenant, database) of the directory, the default first.

    chromadb's AdminAPI lists the databases of a tenant (``list_databases``) but has no
    call that lists tenants (1.5: ``create_tenant`` / ``get_tenant`` only), so the
    tenant names are read from ``chroma.sqlite3``'s ``tenants`` table (read only, in the
    scratch copy) and each tenant's databases are listed by chromadb. The default pair
    alone when there is no such table (an older layout); the ``databases`` table when
    the installed chromadb's client has no AdminAPI.
    """
    default = (DEFAULT_TENANT, DEFAULT_DATABASE)
    try:
        uri = (copy / CHROMA_FILE).resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            tenants = sorted({str(t) for (t,) in db.execute("SELECT id FROM tenants")})
            rows = db.execute("SELECT tenant_id, name FROM databases").fetchall()
    except sqlite3.Error:
        return [default]
    found = {(str(t), str(d)) for t, d in rows}
    with open_client(copy) as client:
        admin = getattr(client, "_admin_client", None)  # the client's own AdminClient
        if admin is not None and hasattr(admin, "list_databases"):
            found = set()
            for tenant in tenants:
                offset = 0
                while True:
                    page = list(admin.list_databases(limit=PAGE, offset=offset, tenant=tenant))
                    found.update((tenant, str(field_of(d, "name"))) for d in page)
                    if len(page) < PAGE:
                        break
                    offset += PAGE
    return [default, *sorted(found - {default})]


def choose(path: Path, found: list[tuple[str, str, str]], wanted: str | None) -> list[int]:
    """Indices into ``found`` (tenant, database, name) of the collections to migrate
    (``--collection``: a plain name, unique in the directory, or ``TENANT/DATABASE/NAME``)."""
    if wanted is None:
        return list(range(len(found)))
    if wanted.count("/") == 2:  # TENANT/DATABASE/NAME
        exact = [n for n, key in enumerate(found) if "/".join(key) == wanted]
    else:  # a plain name: every tenant and database
        exact = [n for n, key in enumerate(found) if key[2] == wanted]
    labels = [label(*key) for key in found]
    if not exact:
        raise StoreFormatError(
            f"{path}: no collection {wanted!r}; collections: {', '.join(labels)}."
        )
    if len(exact) > 1:
        raise StoreFormatError(
            f"{path}: {len(exact)} collections are named {wanted!r} (in other tenants or "
            f"databases): {', '.join('/'.join(found[n]) for n in exact)}. Pick one with "
            "--collection TENANT/DATABASE/NAME."
        )
    return exact
