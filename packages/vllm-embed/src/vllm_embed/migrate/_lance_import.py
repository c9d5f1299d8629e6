"""pylance (``lance``) imported without first importing pandas (`vllm_embed.migrate.lancedb`).

Importing pylance imports ``pyarrow.dataset``, whose module init builds a pyarrow scalar
(``Expression._scalar(True)``). pyarrow's first scalar or array made from a Python object
asks its lazy pandas shim (``pyarrow.lib._pandas_api``) whether the object is a pandas
one, and that first question imports pandas: 1-3 s on the machine the benchmarks run on,
most of pylance's import, paid before the first record can be read. Reading and writing a
LanceDB table for a migration never needs pandas.

`import_lance` imports pylance while pandas cannot be imported *by the importing thread*
(a finder first on ``sys.meta_path``, removed right after, whose loader refuses; pandas is
still found, so pylance's own lazy probe still records it as installed), so pyarrow's shim
records "no pandas" instead of importing it. That record would stay for the whole process: pyarrow
would then treat a pandas object given to ``pa.array`` as a plain sequence (NaN kept
instead of null) until something asks for pandas explicitly. `restore_pandas` is that
explicit question (``Table.to_pandas()`` on an empty table: pyarrow looks for pandas
again and imports it). A background thread started by `import_lance` asks it when the
migration's own background work starts (`restore_pandas_now`, from
``LanceDBStore.warm_up``: the import then overlaps the server's embedding), or
`RESTORE_AFTER_SECONDS` after the import when no migration follows (``doctor``, a dry
run), so the process's pyarrow sees pandas again either way. Importing pandas earlier,
beside the tables being read and the server probed, was measured to slow those as much
as it saved (the import holds the GIL). Nothing is hidden when pandas, pylance or
pyarrow's dataset module were imported already; a pylance that cannot be imported without
pandas is imported again the ordinary way.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["RESTORE_AFTER_SECONDS", "import_lance", "restore_pandas", "restore_pandas_now"]

#: When no migration asks first (`restore_pandas_now`), pyarrow's view of pandas is put
#: back this long after pylance was imported.
RESTORE_AFTER_SECONDS = 5.0
_asked = threading.Event()


class _PandasRefused(importlib.abc.Loader):
    """Fails the import itself; the module is still *found*, so a library probing with
    ``importlib.util.find_spec`` (pylance's lazy ``lance.dependencies``) records pandas
    as installed, as it is."""

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        raise ImportError(
            "pandas is not imported while pylance is (vllm_embed.migrate._lance_import)",
            name=spec.name,
        )

    def exec_module(self, module: ModuleType) -> None:  # never reached: create_module fails
        raise ImportError(f"{module.__name__} is not imported here", name=module.__name__)


class _PandasHidden(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail in one thread (the one importing pylance) only."""

    def __init__(self) -> None:
        self._thread = threading.get_ident()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "pandas" and threading.get_ident() == self._thread:
            return ModuleSpec(fullname, _PandasRefused())
        return None


def import_lance() -> Any:
    """The ``lance`` module; pandas left to a background thread (see the module doc)."""
    if "lance" in sys.modules or "pandas" in sys.modules or "pyarrow.dataset" in sys.modules:
        import lance

        return lance
    hidden = _PandasHidden()
    sys.meta_path.insert(0, hidden)
    try:
        import lance
    except ImportError as exc:  # a pylance that cannot be imported without pandas
        if (exc.name or "").partition(".")[0] != "pandas":
            raise
        lance = None
    finally:
        sys.meta_path.remove(hidden)
    threading.Thread(target=_restore_later, name="vllm-embed-pandas", daemon=True).start()
    if lance is None:
        import lance  # the ordinary way, pandas included

    return lance


def restore_pandas_now() -> None:
    """Have the waiting thread (if any) restore pyarrow's view of pandas now."""
    _asked.set()


def _restore_later() -> None:
    _asked.wait(RESTORE_AFTER_SECONDS)
    restore_pandas()


def restore_pandas() -> None:
    """Make pyarrow look for pandas again (importing it), as if it had never been hidden.
    Without pandas installed (or one pyarrow refuses) there is nothing to restore."""
    import pyarrow as pa

    with contextlib.suppress(ImportError):
        pa.table({}).to_pandas()
