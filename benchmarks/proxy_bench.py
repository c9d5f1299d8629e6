"""The clients through a stock nginx (Debian's, default proxy settings) in front of vLLM.

    python benchmarks/proxy_bench.py [--n 20480] [--rounds 3] [--quick]

A fake vLLM 0.32 server (every encoding, dimension 384) pinned to one core, a real nginx
proxying to it (``vllm_embed_testing.nginx``: nothing tuned, so its header buffer is one
memory page), and each client in a fresh interpreter pinned to the other core:

- ``vllm-embed sync (numpy)`` with every setting at its default (the case that used to
  fail: ``bytes``' metadata header overflows nginx's buffer -> 502 after 12.5 s of retries);
- ``openai SDK (default)``, batch 256 (base64 JSON, lists out);

each direct and through nginx, so the proxy's own cost is shown separately (through /
direct). Target: through nginx, vllm-embed with default settings at least 5x the
openai SDK through the same proxy. Prints a table; writes ``benchmarks/results/proxy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FAKE_KEY, FAKE_MODEL, RESULTS_DIR, Cell, cell_dict, cores, machine, run_worker

from vllm_embed_testing.fake_server import FakeEmbeddingServer
from vllm_embed_testing.nginx import NginxProxy

DIM = 384
CORE = "vllm-embed sync (numpy)"
OPENAI = "openai SDK (default)"
#: (client, batch): None = the library's own default.
CLIENTS = ((CORE, None), (OPENAI, 256))
TARGET_RATIO = 5.0


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_480, help="texts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2048 texts, 1 round")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "proxy.json")
    return parser.parse_args(argv)


def _measure(name: str, batch: int | None, url: str, n: int, rounds: int, core: int) -> Any:
    cell = Cell(
        base_url=url,
        model=FAKE_MODEL,
        api_key=FAKE_KEY,
        dim=DIM,
        batch=batch,
        n=n,
        rounds=rounds,
        budget_s=30.0,
    )
    result = run_worker("client", {"client": name, "cells": [cell_dict(cell)]}, core, 900)
    if isinstance(result, dict):
        return {"error": result.get("error", "no result")}
    return result[0]


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    n, rounds = (2048, 1) if args.quick else (args.n, args.rounds)
    client_core, server_core = cores()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="vllm-embed-proxy-bench-"))
    server = FakeEmbeddingServer(dim=DIM, model=FAKE_MODEL, api_key=FAKE_KEY, cpus=[server_core])
    proxy = NginxProxy(f"127.0.0.1:{server.port}", work).start()
    try:
        # Interleaved: each client direct then through the proxy, twice in opposite orders.
        for order in (CLIENTS, CLIENTS[::-1]):
            for name, batch in order:
                for path, url in (("direct", server.base_url), ("nginx", proxy.base_url)):
                    print(f"[proxy bench] {name} {path}", flush=True)
                    row = _measure(name, batch, url, n, rounds, client_core)
                    rows.append({"client": name, "path": path, "batch": batch, **row})
    finally:
        proxy.stop()
        server.stop()
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["client"], row["path"])
        rate = row.get("vectors_per_s")
        better = rate is not None and rate > best.get(key, {}).get("vectors_per_s", 0)
        if better or key not in best:
            best[key] = row

    def rate(client: str, path: str) -> float | None:
        value = best.get((client, path), {}).get("vectors_per_s")
        return float(value) if value is not None else None

    ours, theirs = rate(CORE, "nginx"), rate(OPENAI, "nginx")
    ratio = ours / theirs if ours and theirs else None
    results = {
        "command": "python benchmarks/proxy_bench.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "n": n,
        "rounds": rounds,
        "rows": rows,
        "target": {
            "name": "through nginx: vllm-embed (defaults) / openai SDK (default)",
            "ratio": ratio,
            "target": TARGET_RATIO,
            "pass": ratio is not None and ratio >= TARGET_RATIO,
        },
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print("| client | batch | direct vectors/s | through nginx vectors/s | proxy cost |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, batch in CLIENTS:
        direct, via = rate(name, "direct"), rate(name, "nginx")
        cost = f"{direct / via:.2f}x slower" if direct and via else "n/a"
        error = best.get((name, "nginx"), {}).get("error")
        shown = f"{via:,.0f}" if via else f"error: {error}"
        print(
            f"| {name} | {batch or 'default'} | "
            f"{f'{direct:,.0f}' if direct else 'n/a'} | {shown} | {cost} |"
        )
    verdict = "PASS" if results["target"]["pass"] else "FAIL"
    shown_ratio = f"{ratio:.1f}x" if ratio else "n/a"
    print(f"\nthrough nginx, vllm-embed / openai SDK: {shown_ratio} (target >= 5x): {verdict}")
    print(f"Results written to {args.out} ({results['seconds']} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
