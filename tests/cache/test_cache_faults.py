"""Fault tests on real processes: a writer killed mid-write, two writers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from cache_support import FakeModel, client_cache, through, vector

from vllm_embed import EmbeddingCache

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def _writer(path: Path, prefix: str, batches: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "cache_writer.py"), str(path), prefix, str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=HERE,
    )


def _check_all_whole_and_correct(path: Path, prefix: str, upto: int) -> int:
    """Every entry the cache returns is the exact vector of its text; returns the hits."""
    with EmbeddingCache(path) as cache:
        cc, stats = client_cache(cache)
        model = FakeModel(dim=256)
        texts = [f"{prefix} {b} {i}" for b in range(upto) for i in range(64)]
        result = through(cc, model, texts)
        np.testing.assert_array_equal(result.vectors, np.stack([vector(t, 256) for t in texts]))
        return stats.cache_hits


def test_process_killed_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    proc = _writer(path, "kill", 0)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    time.sleep(1.0)  # mid-stream: batches are being written all the time
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps it and closes its pipes (no ResourceWarning)
    assert proc.returncode == -signal.SIGKILL
    with EmbeddingCache(path) as cache:
        stored = cache.stats()["entries"]
    batches = stored // 64 + 1  # the entries plus the batch after them (not stored)
    hits = _check_all_whole_and_correct(path, "kill", batches)
    assert hits == stored >= 64  # at least the first batch survived, whole
    assert hits % 64 == 0  # only whole batches (one transaction each)


def test_two_processes_fill_one_cache_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    EmbeddingCache(path).close()
    procs = [_writer(path, name, 30) for name in ("left", "right")]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for name in ("left", "right"):
        assert _check_all_whole_and_correct(path, name, 30) == 30 * 64
