"""Reading a LanceDB database imports pylance without importing pandas first
(`vllm_embed.migrate._lance_import`), and pyarrow's view of pandas is put back.

Each test runs in a fresh interpreter (this process imported pandas long ago): a child
script reads or migrates a database LangChain's ``LanceDB`` wrote, records which thread
imported pandas, and checks pyarrow's pandas semantics afterwards (a pandas NaN becomes a
null only when pyarrow knows pandas is there).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from lancedb_support import lance_rows, lance_vectors, make_langchain_lancedb

from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector

KEY = "sk-lance-import"
DIM = 24

#: The child's prologue: who imports pandas (a finder that only watches), and the facts
#: it prints last as JSON.
_PROLOGUE = """
import json, sys, threading
importers = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            importers.append(threading.current_thread().name)
        return None

sys.meta_path.insert(0, Watch())  # behind the finder that hides pandas, once there
import vllm_embed.migrate._lance_import as lance_import
from vllm_embed.migrate import open_store

def restorer():
    return [t for t in threading.enumerate() if t.name == "vllm-embed-pandas"]

def nan_is_null():
    import pandas as pd
    import pyarrow as pa

    return pa.array(pd.Series([1.0, float("nan")])).null_count == 1

def lance_sees_pandas():
    # pylance's own lazy probe (lance.dependencies), made while it was imported
    from lance import dependencies

    return dependencies._PANDAS_AVAILABLE
"""


def _child(script: str, *args: str) -> dict[str, Any]:
    code = _PROLOGUE + textwrap.dedent(script)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_cli_migration_imports_pandas_off_the_main_thread_then_restores_it(tmp_path: Path) -> None:
    db = make_langchain_lancedb(tmp_path / "db", n=12)
    script = """
    lance_import.RESTORE_AFTER_SECONDS = 600.0  # only the migration's own request counts
    from vllm_embed.cli import main

    path, base_url, key = sys.argv[1:]
    store = open_store(path)
    after_open = "pandas" in sys.modules
    main(["migrate", path, "--base-url", base_url, "--api-key", key, "--yes"],
         standalone_mode=False)
    for thread in restorer():
        thread.join(60)
    print(json.dumps({"after_open": after_open, "importers": importers,
                      "left": len(restorer()), "nan_is_null": nan_is_null(),
                      "lance_sees_pandas": lance_sees_pandas()}))
    """
    with FakeEmbeddingServer(dim=DIM, model="fake-model", api_key=KEY) as server:
        facts = _child(script, str(db), server.base_url, KEY)
    assert facts["after_open"] is False  # reading the tables did not import pandas
    assert facts["importers"], "pandas was never imported: pyarrow's view was not restored"
    assert "MainThread" not in facts["importers"]
    assert facts["left"] == 0
    assert facts["nan_is_null"] is True  # pyarrow's pandas semantics, as without the trick
    assert facts["lance_sees_pandas"] is True  # pylance writes DataFrames as before
    rows = lance_rows(db, "vectorstore")  # the migration itself went through
    vectors = lance_vectors(db, "vectorstore")
    assert vectors.shape == (12, DIM)
    for row, vector in zip(rows, vectors, strict=True):
        assert vector == pytest.approx(fake_vector(row["text"], DIM), abs=1e-6)


def test_restored_soon_when_no_migration_follows(tmp_path: Path) -> None:
    """``doctor`` or a dry run read the database and never start a migration."""
    db = make_langchain_lancedb(tmp_path / "db", n=4)
    script = """
    lance_import.RESTORE_AFTER_SECONDS = 0.2
    store = open_store(sys.argv[1])
    threads = restorer()
    for thread in threads:
        thread.join(60)
    import lance, pandas as pd
    written = lance.write_dataset(pd.DataFrame({"n": [1, 2]}), sys.argv[2]).count_rows()
    print(json.dumps({"threads": len(threads), "importers": importers,
                      "records": len(store.ids), "nan_is_null": nan_is_null(),
                      "lance_sees_pandas": lance_sees_pandas(), "written": written}))
    """
    facts = _child(script, str(db), str(tmp_path / "frame.lance"))
    assert facts == {
        "threads": 1,
        "importers": ["vllm-embed-pandas"],
        "records": 4,
        "nan_is_null": True,
        "lance_sees_pandas": True,
        "written": 2,  # pylance takes a pandas DataFrame in the same process
    }


def test_nothing_hidden_when_pandas_is_imported_already(tmp_path: Path) -> None:
    db = make_langchain_lancedb(tmp_path / "db", n=3)
    script = """
    import pandas
    store = open_store(sys.argv[1])
    print(json.dumps({"threads": len(restorer()), "importers": importers,
                      "records": len(store.ids), "nan_is_null": nan_is_null()}))
    """
    facts = _child(script, str(db))
    assert facts == {
        "threads": 0,
        "importers": ["MainThread"],
        "records": 3,
        "nan_is_null": True,
    }


def test_without_pandas_installed_reading_and_restoring_work(tmp_path: Path) -> None:
    db = make_langchain_lancedb(tmp_path / "db", n=5)
    script = """
    class NoPandas:  # an environment without pandas, for every thread
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "pandas":
                raise ModuleNotFoundError(name, name=name)
            return None

    sys.meta_path.insert(0, NoPandas())
    store = open_store(sys.argv[1])
    lance_import.restore_pandas()  # what the waiting thread runs: no error without pandas
    import pyarrow as pa

    print(json.dumps({"records": len(store.ids), "pandas": "pandas" in sys.modules,
                      "array": pa.array([1.0, None]).null_count}))
    """
    facts = _child(script, str(db))
    assert facts == {"records": 5, "pandas": False, "array": 1}


def test_a_pylance_that_needs_pandas_to_import_is_imported_the_ordinary_way(tmp_path: Path) -> None:
    """Should a pylance release import pandas eagerly, hiding it must not break the read."""
    eager = tmp_path / "eager" / "lance"
    eager.mkdir(parents=True)
    (eager / "__init__.py").write_text("import pandas\n\nEAGER = pandas.__name__\n")
    script = """
    sys.path.insert(0, sys.argv[1])
    lance = lance_import.import_lance()
    threads = restorer()
    for thread in threads:
        thread.join(60)
    print(json.dumps({"eager": lance.EAGER, "threads": len(threads),
                      "nan_is_null": nan_is_null()}))
    """
    facts = _child(script, str(eager.parent))
    assert facts == {"eager": "pandas", "threads": 1, "nan_is_null": True}
