"""The loop the store-migration benchmarks share: run one migration and time it, run a step
in a fresh interpreter, print the runs as a table, write the JSON.

Used by ``migrate_bench.py``, ``migrate_stores_bench.py``, ``migrate_dirstores_bench.py``,
``qdrant_sqlitevec_bench.py`` and ``pg_migrate_bench.py``. Nothing heavy is imported at
module level (the core and the store libraries are imported by the step that needs them).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "peak_rss_mb",
    "print_runs",
    "report_runs",
    "run_child",
    "run_migration",
    "write_results",
]


def peak_rss_mb() -> float:
    """This process's peak resident set size (``ru_maxrss``), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_migration(
    store: Any,
    base_url: str,
    api_key: str,
    *,
    options: Any = None,
    open_kwargs: Mapping[str, Any] | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
    quiet_warnings: bool = False,
) -> dict[str, Any]:
    """Open ``store`` (a path), migrate it through ``EmbeddingClient(base_url)`` and time it.

    Returns ``records``, ``seconds`` (the whole run, opening included), ``embed_seconds``,
    ``rate`` and ``embed_rate`` (records/s), ``ratio`` (whole-run rate / embedding-phase
    rate), ``phases`` (``open`` then the engine's steps), ``cpu_seconds`` (the process's
    CPU time over the whole run, every thread: work moved into the background still
    counts there), ``verified_with``, ``old_dim``, ``new_dim`` and ``peak_rss_mb``.
    ``quiet_warnings`` silences UserWarnings the store library prints while it is opened
    (Qdrant local mode's "> 20,000 points").
    """
    from vllm_embed import EmbeddingClient
    from vllm_embed.migrate import MigrationOptions, migrate_store, open_store

    with warnings.catch_warnings():
        if quiet_warnings:
            warnings.simplefilter("ignore", UserWarning)
        began, cpu_began = time.perf_counter(), time.process_time()
        opened = open_store(store, **dict(open_kwargs or {}))
        open_seconds = time.perf_counter() - began
        with EmbeddingClient(base_url, api_key=api_key, **dict(client_kwargs or {})) as client:
            result = migrate_store(opened, client, options or MigrationOptions())
        whole = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
    return {
        "records": result.records,
        "seconds": whole,
        "embed_seconds": result.embed_seconds,
        "rate": result.records / whole,
        "embed_rate": result.rate,
        "ratio": (result.records / whole) / result.rate if result.rate else None,
        "phases": {"open": open_seconds, **result.phases},
        "cpu_seconds": cpu,
        "verified_with": result.verified_with,
        "old_dim": result.old_dim,
        "new_dim": result.new_dim,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(script: str, *args: str, pythonpath: Path | None = None) -> dict[str, Any]:
    """``python script --phase ARGS`` in a fresh interpreter (its own peak RSS); the JSON
    object it prints last. A failed step stops the benchmark with its stderr.
    ``pythonpath`` goes first on the child's ``PYTHONPATH`` (older code, for a baseline)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, script, "--phase", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode:
        raise SystemExit(f"phase {args[0]} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _cell(run: Mapping[str, Any], key: str) -> str:
    value = run.get(key)
    if value is None:
        return "-"
    if key in ("ratio", "vs_ingest"):
        return f"{value:.2f}x"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def print_runs(runs: Mapping[str, Mapping[str, Any]], *, vs_ingest: bool = False) -> None:
    """One line per run: seconds, records/s, embedding-phase records/s, whole/embed and,
    when asked, the whole run's rate over the library's own ingest, peak RSS (MiB)."""
    columns = [
        ("seconds", "seconds", 9),
        ("rate", "rec/s", 9),
        ("embed_rate", "embed rec/s", 13),
        ("ratio", "whole/embed", 13),
    ]
    if vs_ingest:
        columns.append(("vs_ingest", "vs ingest", 11))
    columns.append(("peak_rss_mb", "peak MiB", 10))
    width = max([18, *(len(name) + 2 for name in runs)])
    print(f"{'run':<{width}}" + "".join(f"{title:>{w}}" for _, title, w in columns))
    for name, run in runs.items():
        print(f"{name:<{width}}" + "".join(f"{_cell(run, k):>{w}}" for k, _, w in columns))


def write_results(path: Path, report: Mapping[str, Any]) -> None:
    """The JSON report (indented, one trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def report_runs(
    path: Path,
    runs: Mapping[str, Mapping[str, Any]],
    *,
    records: int,
    old_dim: int,
    new_dim: int,
    load: float,
    vs_ingest: bool = False,
    **extra: Any,
) -> None:
    """Print the heading and the runs (`print_runs`), then write the JSON report: records,
    dimensions, the load average before, Python's version, ``extra``, the runs."""
    print(f"{records} records, dim {old_dim} -> {new_dim}; load {load:.1f}")
    print_runs(runs, vs_ingest=vs_ingest)
    report = {
        "records": records,
        "old_dim": old_dim,
        "new_dim": new_dim,
        "load_before": load,
        "python": platform.python_version(),
        **extra,
        "runs": runs,
    }
    write_results(path, report)
