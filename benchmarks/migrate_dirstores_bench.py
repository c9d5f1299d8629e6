"""Benchmark ``vllm-embed migrate`` on a LanceDB database and a Milvus Lite database (not a test).

    python benchmarks/migrate_dirstores_bench.py [--records 200000] [--old-dim 384]
        [--new-dim 384] [--formats lancedb milvus milvus-server]
        [--store-dir /tmp/vllm-embed-dir-bench] [--baseline GIT_REF]
        [--server-records 50000] [--repeat 1]
        [--results benchmarks/results/migrate_dirstores.json]

Needs lancedb / pymilvus + milvus-lite (and the core): the ``lancedb_milvus`` session's
venv has them. Against the fake server (``vllm_embed_testing.fake_server.
FakeEmbeddingServer``) it times, in ONE run and each step in its own process (so every
peak RSS, ``ru_maxrss``, is that step's own):

1. ``<format>-ingest``: the library's own write of the same rows (ids, texts, metadata,
   random vectors at the new dimension): ``create_table`` + ``add`` in batches for
   LanceDB, ``insert`` in batches of 10,000 for Milvus Lite (LangChain's ``add_texts``
   sends 1,000 per call), timed from before importing pymilvus and milvus-lite (the
   migration's run pays that import too; ``import_seconds``). What the app paid to build
   the store: the floor for any rebuild through the library's API;
2. ``<format>``: the whole migration (read, embed in journaled chunks, fill a copy through
   the library, reopen + verify, swap), with its embedding phase;
3. with ``--baseline REF``: ``<format>@REF``, the same migration by the code of git ref
   REF (``git archive`` of its core into the store dir, put first on ``PYTHONPATH``), for
   a before/after of one run under the same load;
4. with ``--repeat N``: steps 2 and 3 N times, interleaved, each on a store built again
   (``<format>#2``, ``<format>@REF#2``, ...).

``milvus-server`` is a real Milvus server (embedded Milvus 2.3.5: the ``milvus`` package,
started by ``vllm_embed_testing.milvus_server``), ``--server-records`` rows:
``milvus-server-ingest`` is pymilvus' own ``insert`` of the rows into it (in batches of
10,000, then ``flush``; timed from before importing pymilvus, as the migration pays that
import too: ``import_seconds``), then the migration of a collection through its URI (new
collection, verify, alias switch); with ``--baseline`` the same migration by the code of
REF, of a collection of its own. Every migration starts on an emptied server (the
collections of the runs before it dropped), so each run finds the server as the first.

The stores are written by the libraries themselves in the LangChain layouts. Prints a
table and writes ``benchmarks/results/migrate_dirstores.json``. The machine is shared and
noisy: compare the steps of one run, as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "migrate_dirstores.json"
sys.path.insert(0, str(ROOT / "shared"))

from _migrate_run import peak_rss_mb, report_runs, run_child, run_migration  # noqa: E402

KEY = "sk-bench-dirstores"
BATCH = 10_000
#: Seconds a builder spent importing its library (inside its time), when it says.
IMPORT_SECONDS: float | None = None


def _texts(start: int, stop: int) -> list[str]:
    return [
        f"document {i}: notes about topic {i % 97} and item {i % 13}" for i in range(start, stop)
    ]


def _vectors(n: int, dim: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def build_lancedb(path: Path, records: int, dim: int) -> float:
    """LangChain ``LanceDB``'s layout (vector, id, text, metadata) through lancedb."""
    import lancedb
    import pyarrow as pa

    began = time.perf_counter()
    db = lancedb.connect(str(path))
    table = None
    for start in range(0, records, BATCH):
        stop = min(records, start + BATCH)
        vectors = _vectors(stop - start, dim, start)
        batch = pa.table(
            {
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
                "id": [f"id{i}" for i in range(start, stop)],
                "text": _texts(start, stop),
                "metadata": [{"i": i, "source": f"doc{i // 50}.md"} for i in range(start, stop)],
            }
        )
        if table is None:
            table = db.create_table("vectorstore", batch)
        else:
            table.add(batch)
    return time.perf_counter() - began


def build_milvus(path: Path, records: int, dim: int) -> float:
    """LangChain ``Milvus``'s layout (pk, text, vector, metadata fields) through pymilvus.

    Timed from before importing pymilvus and milvus-lite, as the migration's whole run
    pays their import (when it opens the store): ``IMPORT_SECONDS`` says how long it took."""
    global IMPORT_SECONDS
    began = time.perf_counter()
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    IMPORT_SECONDS = time.perf_counter() - began
    client = MilvusClient(str(path))
    _fill_langchain_milvus(client, "LangChainCollection", records, dim)
    client.close()
    server_manager_instance.release_server(str(path))
    return time.perf_counter() - began


def _fill_langchain_milvus(client: Any, name: str, records: int, dim: int) -> None:
    """Collection ``name`` in LangChain ``Milvus``'s layout (text, pk, vector, an int field),
    FLAT index, filled with ``records`` rows of random vectors in batches of BATCH."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("pk", DataType.VARCHAR, max_length=65535, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("i", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    for start in range(0, records, BATCH):
        stop = min(records, start + BATCH)
        vectors = _vectors(stop - start, dim, start)
        rows = [
            {"text": t, "pk": f"id{start + k}", "vector": v.tolist(), "i": start + k}
            for k, (t, v) in enumerate(zip(_texts(start, stop), vectors, strict=True))
        ]
        client.insert(name, rows)


def build_milvus_server(where: str, records: int, dim: int) -> float:
    """The same LangChain layout in collection NAME of the server at URI (``URI|NAME``).

    Timed from before importing pymilvus, as for Milvus Lite: the migration pays that
    import when it opens the server (``IMPORT_SECONDS`` says how long it took)."""
    global IMPORT_SECONDS
    uri, name = where.split("|")
    began = time.perf_counter()
    from pymilvus import MilvusClient

    IMPORT_SECONDS = time.perf_counter() - began
    client = MilvusClient(uri=uri, token=os.environ["MILVUS_TOKEN"])
    _fill_langchain_milvus(client, name, records, dim)
    client.flush(name)
    client.close()
    return time.perf_counter() - began


def phase_migrate(path: str, base_url: str) -> dict[str, Any]:
    """Migrate the store at ``path`` (a directory, or ``URI|COLLECTION`` on a server)."""
    uri, _, collection = path.partition("|")
    return run_migration(uri, base_url, KEY, open_kwargs={"collection": collection or None})


def _child(*args: str, pythonpath: Path | None = None) -> dict[str, Any]:
    return run_child(__file__, *args, pythonpath=pythonpath)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--old-dim", type=int, default=384)
    parser.add_argument("--new-dim", type=int, default=384)
    parser.add_argument("--formats", nargs="+", default=["lancedb", "milvus"])
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/vllm-embed-dir-bench"))
    parser.add_argument("--baseline", help="also migrate with the code of this git ref")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to write")
    parser.add_argument("--server-records", type=int, default=50_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="migrations per format (and of the baseline, interleaved), each of a store "
        "built again: NAME, NAME#2, ... (the machine is noisy)",
    )
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    builders: dict[str, Any] = {
        "lancedb": build_lancedb,
        "milvus": build_milvus,
        "milvus-server": build_milvus_server,
    }
    if args.phase:
        kind, *rest = args.phase
        if kind == "build":
            where: Any = rest[1] if rest[0] == "milvus-server" else Path(rest[1])
            seconds = builders[rest[0]](where, int(rest[2]), int(rest[3]))
            out = {"seconds": seconds, "peak_rss_mb": peak_rss_mb()}
            if IMPORT_SECONDS is not None:
                out["import_seconds"] = IMPORT_SECONDS
            print(json.dumps(out))
        else:
            print(json.dumps(phase_migrate(rest[0], rest[1])))
        return

    from vllm_embed_testing.fake_server import FakeEmbeddingServer

    shutil.rmtree(args.store_dir, ignore_errors=True)
    args.store_dir.mkdir(parents=True)
    runs: dict[str, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    suffix = {"lancedb": "", "milvus": ".db", "milvus-server": ""}
    baseline = _export(args.baseline, args.store_dir) if args.baseline else None
    os.environ["VLLM_EMBED_MIGRATE_STATE"] = str(args.store_dir / "state")
    milvus = None
    with FakeEmbeddingServer(dim=args.new_dim, model="fake-model", api_key=KEY) as server:
        for fmt in args.formats:
            records = args.records
            if fmt == "milvus-server":
                from vllm_embed_testing.milvus_server import start_milvus

                milvus = start_milvus(args.store_dir / "milvus-server")
                os.environ["MILVUS_TOKEN"] = milvus.token
                records = args.server_records
                ingest = f"{milvus.uri}|ingest"
                stores = [f"{milvus.uri}|docs", f"{milvus.uri}|docsbase"]
            else:
                ingest = str(args.store_dir / f"{fmt}-ingest{suffix[fmt]}")
                stores = [str(args.store_dir / f"{fmt}{suffix[fmt]}")]
                if baseline is not None:
                    stores.append(str(args.store_dir / f"{fmt}-baseline{suffix[fmt]}"))
            run = _child("build", fmt, ingest, str(records), str(args.new_dim))
            runs[f"{fmt}-ingest"] = {**run, "rate": records / run["seconds"]}
            if fmt != "milvus-server":
                shutil.rmtree(ingest)
            for repeat in range(args.repeat):
                for n, store in enumerate(stores):
                    if n and baseline is None:
                        break
                    name = fmt if n == 0 else f"{fmt}@{args.baseline}"
                    name += f"#{repeat + 1}" if repeat else ""
                    if milvus is not None:
                        _clear_server(milvus)  # every run starts on an empty server
                    else:
                        _remove_store(Path(store))
                    _child("build", fmt, store, str(records), str(args.old_dim))
                    run = _child(
                        "migrate", store, server.base_url, pythonpath=baseline if n else None
                    )
                    run["vs_ingest"] = run["rate"] / runs[f"{fmt}-ingest"]["rate"]
                    runs[name] = run
            if milvus is not None:
                milvus.stop()
                milvus = None
    report_runs(
        args.results,
        runs,
        records=args.records,
        old_dim=args.old_dim,
        new_dim=args.new_dim,
        load=load,
        vs_ingest=True,
        load_after=os.getloadavg()[0],
        cpus=os.cpu_count(),
        command="python benchmarks/migrate_dirstores_bench.py " + " ".join(sys.argv[1:]),
    )


def _clear_server(milvus: Any) -> None:
    """Drop every collection of the server (the ingest's, earlier runs' new and old)."""
    client = milvus.client()
    try:
        for name in client.list_collections():
            for alias in client.list_aliases(name).get("aliases") or []:
                client.drop_alias(alias)
            client.drop_collection(name)
    finally:
        client.close()


def _remove_store(path: Path) -> None:
    """A store a previous repeat migrated, with its backup (``NAME.d<dim>.bak``)."""
    for old in [path, *path.parent.glob(f"{path.name}.d*.bak*")]:
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()


def _export(ref: str, store_dir: Path) -> Path:
    """The core package's source at git ref ``ref``, exported under ``store_dir``."""
    out = store_dir / f"baseline-{ref}"
    out.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "packages/vllm-embed/src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out / "packages" / "vllm-embed" / "src"


if __name__ == "__main__":
    main()
