"""vllm-embed benchmark harness (``nox -s bench`` runs this file).

    python benchmarks/run.py                 # everything (about 15 to 25 minutes)
    python benchmarks/run.py --skip-live     # parts 1 and 3 only
    python benchmarks/run.py --quick --skip-live   # CI smoke run, under 3 minutes

1. Client ceiling: every client against a fast fake server in its own process, pinned to
   one core, the client (a fresh interpreter per client) pinned to the other.
2. Live vLLM: the same clients, vLLM's offline engine and embed_query latency against a
   live vLLM CPU server started with ``vllm_embed.server``.
3. Scale-out: the core client over 1, 2 and 4 fake servers each capped at a fixed rate.

Prints Markdown tables and writes ``benchmarks/results/latest.json`` (``quick.json`` with
``--quick``). Missed targets are printed as FAIL; the exit code is 0 unless ``--strict``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _parts
import _report
from _common import RESULTS_DIR, machine


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (CI): small sizes")
    parser.add_argument("--skip-live", action="store_true", help="skip part 2 (live vLLM)")
    parser.add_argument(
        "--parts", default="ceiling,live,scaleout", help="comma list of parts to run"
    )
    parser.add_argument(
        "--clients",
        default="",
        help="comma list of client-name substrings to run in part 1 (default: every client)",
    )
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    parts = set(args.parts.split(","))
    if args.skip_live:
        parts.discard("live")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "python benchmarks/run.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
    }
    if "ceiling" in parts:
        only = tuple(name for name in args.clients.split(",") if name)
        if args.quick:
            results["ceiling"] = _parts.ceiling(
                (1024,), (256,), n=2048, rounds=1, budget_s=0, default_dims=(1024,), only=only
            )
        else:
            results["ceiling"] = _parts.ceiling(
                (1024, 4096),
                (64, 256),
                n=20_480,
                rounds=3,
                budget_s=8.0,
                default_dims=(384, 1024),
                only=only,
            )
    if "live" in parts:
        try:
            results["live"] = _parts.live(
                n=200 if args.quick else 2000, queries=50 if args.quick else 300
            )
        except Exception as exc:  # reported, never hidden
            results["live"] = {"error": f"live part failed: {exc!r}"[:2000]}
    else:
        results["live"] = {"skipped": "skipped (--skip-live)"}
    if "scaleout" in parts:
        results["scaleout"] = _parts.scaleout(
            rate=4000.0, seconds=1.0 if args.quick else 4.0, counts=(1, 2, 4)
        )
    results["targets"] = _report.targets(results)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(_report.markdown(results))
    print(f"Results written to {out} ({results['seconds']} s).")
    missed = [t for t in results["targets"] if not t["pass"]]
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
