"""vllm-embed-ray benchmark: scale-out over rate-capped fake servers, and Ray's overhead.

    python benchmarks/ray_bench.py [--quick] [--out benchmarks/results/ray.json]

Needs vllm-embed, vllm-embed-ray (ray[data]) and pyarrow installed, and starts everything
itself: a two-node local Ray cluster (``ray.cluster_utils.Cluster``, 2 logical CPUs per
node) and fake servers (``shared/vllm_embed_testing/fake_server/``) in their own
processes.

1. Scale-out: N = 1, 2, 4 fake servers each capped at ``--rate`` vectors/s; one dataset per
   N, sized for about ``--seconds`` of work at N x the cap, through ``embed_dataset`` with
   every server URL. Start-up (job start to the first finished block) is reported apart
   from the steady rate. Target: steady rate
   >= 0.9 x N x (the one-server steady rate of the same run).
   Steady rate: rows between the blocks passing 10% and 90% of the rows / the time between.
2. Overhead: one uncapped fake server, the same corpus through the plain client (in this
   process, its 8 request threads) and through Ray (actors), in the same run. Reported:
   Ray's start-up, its steady rate, the ratio to the plain client, and start-up as a
   fraction of the Ray run (the corpus is sized so that it is small).

Prints Markdown tables and writes JSON. Figures from one run on a shared machine: compare
the ratios within the run, not absolute numbers across runs.
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
sys.path.insert(0, str(ROOT / "shared"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from vllm_embed import EmbeddingClient  # noqa: E402
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector  # noqa: E402

DIM = 256


def _cluster() -> Any:
    import ray
    import ray.data
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    node = {"num_cpus": 2, "object_store_memory": 300 * 2**20}
    for attempt in range(5):  # a raylet has 30 s to register; a loaded machine can miss it
        cluster = Cluster()
        try:
            cluster.add_node(**node, include_dashboard=False)
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            break
        except Exception as exc:
            cluster.shutdown()
            print(f"cluster start attempt {attempt + 1} failed: {exc}", flush=True)
    else:
        raise SystemExit("the two-node Ray cluster did not start")
    ray.init(address=cluster.address, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return cluster


def _dataset(n: int, blocks: int) -> Any:
    import ray.data

    table = pa.table({"id": np.arange(n), "text": [f"passage {i} of the corpus" for i in range(n)]})
    step = -(-n // blocks)
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, n, step)])


def _run_ray(ds: Any, urls: list[str], actors: int, batch_size: int) -> dict[str, Any]:
    from vllm_embed_ray import embed_dataset

    out = embed_dataset(
        ds,
        base_url=urls,
        concurrency=actors,
        batch_size=batch_size,
        num_cpus=0.5,
        instructions=None,
    )
    start = time.perf_counter()
    first_at: float | None = None
    rows = 0
    marks: list[tuple[float, int]] = []  # (time, rows done) after each block
    seen = np.zeros(ds.count(), dtype=np.int32)
    checked = False
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        now = time.perf_counter()
        ids = batch.column("id").to_numpy()
        np.add.at(seen, ids, 1)
        rows += batch.num_rows
        marks.append((now, rows))
        if first_at is None:
            first_at = now
        if not checked:
            col = batch.column("embedding").combine_chunks().storage
            vec = col.flatten().to_numpy()[:DIM]
            text = batch.column("text")[0].as_py()
            assert np.array_equal(vec, fake_vector(text, DIM)), "wrong vector"
            checked = True
    end = time.perf_counter()
    assert first_at is not None
    assert (seen == 1).all(), "a row is missing or duplicated"
    # steady state: from the block that passes 10% of the rows to the one that passes 90%
    # (blocks finishing together right after start-up would overstate a rate from the first)
    t10, r10 = next(m for m in marks if m[1] >= 0.1 * rows)
    t90, r90 = next(m for m in marks if m[1] >= 0.9 * rows)
    steady = (r90 - r10) / max(t90 - t10, 1e-9) if t90 > t10 else rows / (end - first_at)
    return {
        "rows": rows,
        "startup_s": round(first_at - start, 2),
        "total_s": round(end - start, 2),
        "steady_rate": round(steady, 1),
        "overall_rate": round(rows / (end - start), 1),
    }


def scale_out(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for n in (1, 2, 4):
        servers = [FakeEmbeddingServer(dim=DIM, rate_limit=args.rate) for _ in range(n)]
        try:
            rows = int(args.rate * n * args.seconds)
            actors = max(2, n)
            r = _run_ray(
                _dataset(rows, blocks=8 * actors),
                [s.base_url for s in servers],
                actors,
                args.batch_size,
            )
            r.update(servers=n, actors=actors, cap=args.rate * n)
            results.append(r)
            print(f"  N={n}: {r}", flush=True)
        finally:
            for s in servers:
                s.stop()
    one = results[0]["steady_rate"]
    for r in results:
        r["vs_n_x_one"] = round(r["steady_rate"] / (r["servers"] * one), 3)
        r["vs_cap"] = round(r["steady_rate"] / r["cap"], 3)
    return results


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    rows = args.overhead_rows
    with FakeEmbeddingServer(dim=DIM) as server:
        texts = [f"passage {i} of the corpus" for i in range(rows)]
        with EmbeddingClient(server.base_url, instructions=None) as client:
            client.embed_documents(texts[:512])  # discovery + connections, as Ray's warm-up
            start = time.perf_counter()
            done = 0
            for i in range(0, rows, args.batch_size):  # same rows per call as an actor
                done += len(client.embed_documents(texts[i : i + args.batch_size]))
            plain_s = time.perf_counter() - start
        plain = rows / plain_s
        r = _run_ray(_dataset(rows, blocks=32), [server.base_url], args.actors, args.batch_size)
    r.update(
        plain_rate=round(plain, 1),
        plain_s=round(plain_s, 2),
        ray_vs_plain=round(r["steady_rate"] / plain, 3),
        startup_fraction=round(r["startup_s"] / r["total_s"], 3),
        actors=args.actors,
    )
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="cap per server, vectors/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="work per scale-out run")
    parser.add_argument("--overhead-rows", type=int, default=600_000)
    parser.add_argument("--actors", type=int, default=2, help="actors for the overhead part")
    parser.add_argument("--batch-size", type=int, default=512, help="rows per actor call")
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ray.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.overhead_rows = 5.0, 20_000

    import ray

    t0 = time.perf_counter()
    cluster = _cluster()
    cluster_s = time.perf_counter() - t0
    print(f"two-node cluster up in {cluster_s:.1f} s", flush=True)
    try:
        print("scale-out (rate-capped servers):", flush=True)
        scale = scale_out(args)
        print("overhead (one uncapped server):", flush=True)
        over = overhead(args)
    finally:
        ray.shutdown()
        cluster.shutdown()

    print("\n| servers | actors | cap vec/s | steady vec/s | vs N x one | vs cap | start-up s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in scale:
        print(
            f"| {r['servers']} | {r['actors']} | {r['cap']:,.0f} | {r['steady_rate']:,.0f} | "
            f"{r['vs_n_x_one']:.2f}x | {r['vs_cap']:.2f}x | {r['startup_s']:.1f} |"
        )
    print("\n| one uncapped server | vec/s | start-up s | run s |")
    print("| --- | --- | --- | --- |")
    print(f"| plain client (driver) | {over['plain_rate']:,.0f} | - | {over['plain_s']:.1f} |")
    print(
        f"| Ray, {over['actors']} actors (steady) | {over['steady_rate']:,.0f} | "
        f"{over['startup_s']:.1f} | {over['total_s']:.1f} |"
    )
    print(
        f"\nRay steady / plain = {over['ray_vs_plain']:.2f}x; start-up = "
        f"{100 * over['startup_fraction']:.1f}% of the Ray run"
    )
    targets = [
        {
            "target": f"N={r['servers']} steady >= 0.9 x N x one",
            "measured": r["vs_n_x_one"],
            "pass": r["vs_n_x_one"] >= 0.9,
        }
        for r in scale
    ]
    data = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
            "ray": ray.__version__,
            "pyarrow": pa.__version__,
        },
        "dim": DIM,
        "cluster_start_s": round(cluster_s, 1),
        "scale_out": scale,
        "overhead": over,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
