"""Inputs and outputs of the `vllm-embed embed` tests (tests/embed, and the Ray job in
tests/ray): JSONL / Parquet corpora, running the command, reading the Parquet parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from vllm_embed.cli import main

DIM = 16  # the fake_servers fixture's dimension


def write_jsonl(path: Path, n: int, bad: dict[int, Any] | None = None) -> Path:
    bad = bad or {}
    with path.open("w") as fh:
        for i in range(n):
            row: dict[str, Any] = {"id": i, "body": f"text number {i}", "lang": "en"}
            if i in bad:
                row["body"] = bad[i]
            fh.write(json.dumps(row) + "\n")
            if i == 3:
                fh.write("\n")  # blank lines are skipped
    return path


def write_parquet(path: Path, n: int) -> Path:
    pq.write_table(
        pa.table({"id": list(range(n)), "body": [f"text number {i}" for i in range(n)]}),
        path,
        row_group_size=100,
    )
    return path


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(main, ["embed", *map(str, args)])


def read(out: Path) -> pa.Table:
    parts = sorted(out.glob("part-*.parquet"))
    # parts of different inputs may differ in columns (JSONL vs Parquet input)
    return pa.concat_tables((pq.read_table(p) for p in parts), promote_options="permissive")


def vectors(table: pa.Table) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    assert col.type.extension_name == "arrow.fixed_shape_tensor"
    return col.storage.flatten().to_numpy().reshape(len(col), DIM)
