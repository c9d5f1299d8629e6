"""Benchmark ``vllm-embed migrate`` on a 200,000-record nano-vectordb store (not a test).

    .venv/bin/python benchmarks/migrate_bench.py [--records 200000] [--old-dim 1024]
        [--new-dim 384] [--store-dir /tmp/vllm-embed-migrate-bench] [--format faiss]

``--format faiss``: the same records in a LangChain ``FAISS.save_local`` folder
(IndexFlatL2 + index.pkl, written by langchain-community; needs faiss-cpu), results in
``benchmarks/results/migrate_faiss.json``.

Against the fast fake server (``vllm_embed_testing.fake_server.FakeEmbeddingServer``,
pinned to the last core; the client runs on the first), it measures in separate
processes so peak-memory figures are not polluted by each other:

1. ``raw``: the core client's own throughput, ``EmbeddingClient.embed`` on the same texts;
2. ``migrate``: the whole migration (read, embed in journaled chunks, assemble, verify with
   our parser and with nano-vectordb, atomic rename) with records/s and peak RSS
   (``ru_maxrss``);
3. ``migrate+tracemalloc``: the same run under ``tracemalloc`` for the peak of Python
   allocations (slower, so its time is not reported as a rate).

The store is built once by nano-vectordb itself (``NanoVectorDB.upsert`` + ``save``) and
cached in ``--store-dir``. The budget the issue sets is ``2 x (old matrix + new matrix)``.
Prints a table and writes ``benchmarks/results/migrate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "migrate.json"
sys.path.insert(0, str(ROOT / "shared"))

from _migrate_run import peak_rss_mb, run_child, run_migration, write_results  # noqa: E402

MODEL = "fake-model"
KEY = "sk-bench-migrate"


def caption(i: int) -> str:
    """A DVD-like caption, different for every record."""
    return f"[{i // 60:05d}:{i % 60:02d}] clip {i}: a person walks a dog by the river, camera pans"


# -- phases (each runs in its own process) -------------------------------------------------
def build_store(path: Path, records: int, old_dim: int) -> None:
    """A DVD ``database.json`` written by nano-vectordb itself."""
    import logging

    import numpy as np
    from nano_vectordb import NanoVectorDB

    logging.getLogger("nano-vectordb").setLevel(logging.WARNING)
    rng = np.random.default_rng(0)
    db = NanoVectorDB(old_dim, storage_file=str(path))
    step = 20_000
    for start in range(0, records, step):
        vectors = rng.standard_normal((min(step, records - start), old_dim), dtype=np.float32)
        db.upsert(
            [
                {"__id__": f"clip-{start + k}", "__vector__": v, "caption": caption(start + k)}
                for k, v in enumerate(vectors)
            ]
        )
    db.store_additional_data(video_path="/videos/bench.mp4", fps=2, frames=records)
    db.save()


def build_faiss_store(folder: Path, records: int, old_dim: int) -> None:
    """A LangChain ``save_local`` folder: IndexFlatL2 + pickled docstore, by langchain itself."""
    import faiss
    import numpy as np
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding

    rng = np.random.default_rng(0)
    index = faiss.IndexFlatL2(old_dim)
    step = 20_000
    for start in range(0, records, step):
        index.add(rng.standard_normal((min(step, records - start), old_dim), dtype=np.float32))
    ids = [f"clip-{i}" for i in range(records)]
    docstore = InMemoryDocstore(
        {i: Document(id=i, page_content=caption(n)) for n, i in enumerate(ids)}
    )
    db = FAISS(DeterministicFakeEmbedding(size=old_dim), index, docstore, dict(enumerate(ids)))
    db.save_local(str(folder))


def _pin_client() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})


def phase_raw(base_url: str, records: int, encoding: str) -> dict[str, Any]:
    """The core client's own throughput on the migration's texts."""
    from vllm_embed import EmbeddingClient

    _pin_client()
    texts = [caption(i) for i in range(records)]
    with EmbeddingClient(base_url, api_key=KEY, model=MODEL, encoding=encoding) as client:  # type: ignore[arg-type]
        client.embed(texts)  # warm up: negotiation, connections, the server's vector cache
        began = time.perf_counter()
        vectors = client.embed(texts)
        seconds = time.perf_counter() - began
    assert vectors.shape[0] == records
    return {"seconds": seconds, "records_per_s": records / seconds, "peak_rss_mb": peak_rss_mb()}


def phase_migrate(
    base_url: str, store: Path, out: Path, trace: bool, encoding: str
) -> dict[str, Any]:
    """One whole migration to ``out`` (the source stays for the next run)."""
    import tracemalloc

    from vllm_embed.migrate import MigrationOptions

    _pin_client()
    if trace:
        tracemalloc.start()
    run = run_migration(
        store,
        base_url,
        KEY,
        options=MigrationOptions(out=out),
        open_kwargs={"allow_dangerous_deserialization": True},
        client_kwargs={"model": MODEL, "encoding": encoding},
    )
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    # this report's names for the shared loop's figures; phases: opening, then the engine's
    return {
        **run,
        "records_per_s": run["rate"],
        "embed_records_per_s": run["embed_rate"],
        "peak_traced_mb": traced,
    }


# -- orchestration ---------------------------------------------------------------------------
def _child(*args: str) -> dict[str, Any]:
    return run_child(__file__, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--old-dim", type=int, default=1024)
    parser.add_argument("--new-dim", type=int, default=384)
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/vllm-embed-migrate-bench"))
    parser.add_argument(
        "--encoding",
        default="auto",
        choices=["auto", "bytes", "base64", "float"],
        help="Response encoding for both the raw client and the migration (same for both).",
    )
    parser.add_argument("--format", choices=["nano", "faiss"], default="nano")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        kind, *rest = args.phase
        if kind == "build":
            build_store(Path(rest[0]), int(rest[1]), int(rest[2]))
            print(json.dumps({}))
        elif kind == "build-faiss":
            build_faiss_store(Path(rest[0]), int(rest[1]), int(rest[2]))
            print(json.dumps({}))
        elif kind == "raw":
            print(json.dumps(phase_raw(rest[0], int(rest[1]), rest[2])))
        else:
            trace = kind == "trace"
            result = phase_migrate(rest[0], Path(rest[1]), Path(rest[2]), trace, rest[3])
            print(json.dumps(result))
        return

    from vllm_embed_testing.fake_server import FakeEmbeddingServer

    args.store_dir.mkdir(parents=True, exist_ok=True)
    results = RESULTS if args.format == "nano" else RESULTS.with_name("migrate_faiss.json")
    if args.format == "nano":
        store = args.store_dir / f"database-{args.records}-d{args.old_dim}.json"
        build, out = "build", args.store_dir / "migrated.json"
    else:
        store = args.store_dir / f"faiss-{args.records}-d{args.old_dim}"
        build, out = "build-faiss", args.store_dir / "migrated-faiss"
    if not store.exists():
        print(f"building {store} ({args.format}) ...", file=sys.stderr)
        _child(build, str(store), str(args.records), str(args.old_dim))
    cpus = [os.cpu_count() - 1] if (os.cpu_count() or 1) > 1 else None  # type: ignore[operator]
    runs: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]
    with FakeEmbeddingServer(dim=args.new_dim, model=MODEL, api_key=KEY, cpus=cpus) as server:
        runs["raw"] = _child("raw", server.base_url, str(args.records), args.encoding)
        for name in ("migrate", "trace"):
            _remove(out)
            runs[name] = _child(name, server.base_url, str(store), str(out), args.encoding)
    _remove(out)

    old_mb = args.records * args.old_dim * 4 / 2**20
    new_mb = args.records * args.new_dim * 4 / 2**20
    budget = 2 * (old_mb + new_mb)
    report = {
        "records": args.records,
        "old_dim": args.old_dim,
        "new_dim": args.new_dim,
        "format": args.format,
        "store_file_mb": sum(p.stat().st_size for p in _files(store)) / 2**20,
        "old_matrix_mb": old_mb,
        "new_matrix_mb": new_mb,
        "memory_budget_mb": budget,
        "raw_client": runs["raw"],
        "migrate": runs["migrate"],
        "migrate_tracemalloc": runs["trace"],
        "migrate_vs_raw": runs["migrate"]["records_per_s"] / runs["raw"]["records_per_s"],
        "embed_phase_vs_raw": runs["migrate"]["embed_records_per_s"] / runs["raw"]["records_per_s"],
        "whole_run_vs_embed_phase": runs["migrate"]["records_per_s"]
        / runs["migrate"]["embed_records_per_s"],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            # other work on the machine skews every figure: report it
            "loadavg_1min_before": load_before,
            "loadavg_1min_after": os.getloadavg()[0],
        },
        "server": "FakeEmbeddingServer (one process, pinned to the last core)",
        "encoding": args.encoding,
        "command": "python benchmarks/migrate_bench.py " + " ".join(sys.argv[1:]),
    }
    write_results(results, report)
    _print_table(report, results)


def _files(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_file()] if path.is_dir() else [path]


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _print_table(r: dict[str, Any], results: Path) -> None:
    m, raw, t = r["migrate"], r["raw_client"], r["migrate_tracemalloc"]
    rows = [
        (
            "store",
            f"{r['format']}: {r['records']:,} records, d{r['old_dim']} -> d{r['new_dim']}, "
            f"{r['store_file_mb']:,.0f} MiB file",
        ),
        ("core client embed()", f"{raw['records_per_s']:,.0f} records/s"),
        (
            "migrate, whole run",
            f"{m['records_per_s']:,.0f} records/s ({m['seconds']:.1f} s), "
            f"{r['migrate_vs_raw']:.0%} of raw",
        ),
        (
            "migrate, embedding phase",
            f"{m['embed_records_per_s']:,.0f} records/s, {r['embed_phase_vs_raw']:.0%} of raw",
        ),
        ("whole run / embedding phase", f"{r['whole_run_vs_embed_phase']:.2f}x"),
        (
            "where the time went",
            ", ".join(f"{k} {v:.1f} s" for k, v in m["phases"].items()),
        ),
        ("peak RSS (ru_maxrss)", f"{m['peak_rss_mb']:,.0f} MiB"),
        ("peak traced (tracemalloc)", f"{t['peak_traced_mb']:,.0f} MiB"),
        (
            "old + new matrix",
            f"{r['old_matrix_mb'] + r['new_matrix_mb']:,.0f} MiB "
            f"(budget 2x = {r['memory_budget_mb']:,.0f} MiB)",
        ),
        ("verified with", ", ".join(m["verified_with"])),
        (
            "load average (1 min)",
            f"{r['machine']['loadavg_1min_before']:.1f} before, "
            f"{r['machine']['loadavg_1min_after']:.1f} after, on {r['machine']['cpus']} CPUs",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"wrote {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
