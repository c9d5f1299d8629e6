"""Shared pieces of the benchmark harness: paths, cores, corpora, machine description."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"

# The fake server and corpora live in the project's test support (not an installed package).
if str(ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(ROOT / "shared"))

FAKE_MODEL = "fake-model"
FAKE_KEY = "sk-bench-0000"

PEER_PACKAGES = (
    "vllm-embed",
    "vllm-embed-langchain",
    "vllm-embed-llamaindex",
    "openai",
    "langchain-openai",
    "langchain-core",
    "llama-index-core",
    "llama-index-embeddings-openai-like",
    "httpx",
    "numpy",
)


def cores() -> tuple[int, int]:
    """(client core, server core): the first and last core this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[-1]


def pin(core: int) -> None:
    """Pin this process (all its threads) to one core."""
    os.sched_setaffinity(0, {core})


def ceiling_texts(n: int) -> list[str]:
    """``n`` texts cycling over 256 distinct short texts (batches of 64 / 256 repeat
    exactly, so the fake server answers them from its cache)."""
    return [f"benchmark text number {i % 256} about vector search" for i in range(n)]


def live_texts(n: int) -> list[str]:
    """``n`` distinct short English sentences (the demo corpus, numbered)."""
    from vllm_embed_testing.corpus import DEMO_CORPUS

    return [f"{DEMO_CORPUS[i % len(DEMO_CORPUS)][1]} (#{i})" for i in range(n)]


def query_texts(n: int) -> list[str]:
    from vllm_embed_testing.corpus import DEMO_QUERIES

    queries = [q.text for q in DEMO_QUERIES]
    return [f"{queries[i % len(queries)]} ({i})" for i in range(n)]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in PEER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "packages": versions,
    }


@dataclass
class Cell:
    """One measurement setting handed to a worker process."""

    base_url: str | list[str]
    model: str
    api_key: str | None
    dim: int
    #: Texts per request; None: the library's own default (vllm-embed rows only).
    batch: int | None
    n: int
    texts: str = "ceiling"  # "ceiling" | "live"
    rounds: int = 3
    budget_s: float = 10.0  # stop repeating rounds after this much wall time
    check: bool = True  # compare rows with fake_vector (fake server only)
    extra: dict[str, Any] = field(default_factory=dict)


def run_worker(mode: str, payload: dict[str, Any], core: int | None, timeout: float) -> Any:
    """Run ``_worker.py`` in a fresh interpreter and return the JSON it prints last."""
    cmd = [sys.executable, str(BENCH_DIR / "_worker.py"), mode, json.dumps(payload)]
    env = dict(os.environ, PYTHONHASHSEED="0", TOKENIZERS_PARALLELISM="false")
    if core is not None:
        env["BENCH_CORE"] = str(core)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line[:1] in ("{", "[")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return {"error": f"worker exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def cell_dict(cell: Cell) -> dict[str, Any]:
    return asdict(cell)
