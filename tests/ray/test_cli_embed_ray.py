"""`vllm-embed embed --ray`: the core job run by vllm-embed-ray's actors on the two-node
cluster (the job itself: tests/embed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embed_support import DIM, read, run, vectors, write_jsonl, write_parquet

from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector


@pytest.mark.servers(2)
def test_ray_runs_the_same_job_on_the_cluster(
    tmp_path: Path, ray_cluster: Any, fake_servers: list[FakeEmbeddingServer]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_jsonl(inputs / "a.jsonl", 400)
    write_parquet(inputs / "b.parquet", 300)
    out = tmp_path / "out"
    urls = [a for s in fake_servers for a in ("--base-url", s.base_url)]
    args = [inputs, out, "--column", "body", *urls, "--ray", ray_cluster.address]
    result = run(*args, "--ray-actors", "2")
    assert result.exit_code == 0, result.output
    assert "embedded 700 rows" in result.output
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] is True and manifest["settings"]["mode"] == "ray"
    table = read(out)
    assert sorted(table.column("id").to_pylist()) == sorted([*range(400), *range(300)])
    got = vectors(table)
    texts = table.column("body").to_pylist()
    np.testing.assert_array_equal(got, np.stack([fake_vector(t, DIM) for t in texts]))

    again = run(*args)  # everything done: nothing is embedded twice
    assert again.exit_code == 0, again.output
    assert "embedded 0 rows" in again.output
