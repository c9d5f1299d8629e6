"""The three parts of the benchmark: client ceiling, live vLLM, scale-out.

Each part returns plain dicts (rows) that :mod:`_report` turns into targets and tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _clients import CLIENTS, DEFAULTS_CLIENTS
from _common import BENCH_DIR, FAKE_KEY, FAKE_MODEL, Cell, cell_dict, cores, live_texts, run_worker

from vllm_embed_testing.fake_server import FakeEmbeddingServer


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- 1. client ceiling --------------------------------------------------------------------


def ceiling(
    dims: tuple[int, ...],
    batches: tuple[int, ...],
    n: int,
    rounds: int,
    budget_s: float,
    default_dims: tuple[int, ...] = (),
    only: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Every client x (dim, batch) against fake servers pinned to the server core; each
    client in a fresh interpreter pinned to the client core. ``default_dims``: also the
    vllm-embed rows with every setting at its default (batch "default"), at these dims.
    ``only``: run just the clients whose name contains one of these strings."""
    client_core, server_core = cores()
    servers = {
        dim: FakeEmbeddingServer(dim=dim, model=FAKE_MODEL, api_key=FAKE_KEY, cpus=[server_core])
        for dim in sorted({*dims, *default_dims})
    }
    rows: list[dict[str, Any]] = []

    def cell(dim: int, batch: int | None) -> Cell:
        return Cell(
            base_url=servers[dim].base_url,
            model=FAKE_MODEL,
            api_key=FAKE_KEY,
            dim=dim,
            batch=batch,
            n=n,
            rounds=rounds,
            budget_s=budget_s,
        )

    try:
        cells = [cell(dim, batch) for dim in dims for batch in batches]
        defaults = [cell(dim, None) for dim in default_dims]
        payload = {"cells": [cell_dict(c) for c in cells]}
        _log("ceiling: decode-only reference")
        result = run_worker("decode", payload, client_core, timeout=600)
        rows += _rows(result, None, "reference")
        for name, (_factory, group) in CLIENTS.items():
            if only and not any(part in name for part in only):
                continue
            mine = cells + (defaults if name in DEFAULTS_CLIENTS else [])
            _log(f"ceiling: {name}")
            result = run_worker(
                "client",
                {"client": name, "cells": [cell_dict(c) for c in mine]},
                client_core,
                timeout=1800,
            )
            rows += _rows(result, name, group)
    finally:
        for server in servers.values():
            server.stop()
    return rows


def _rows(result: Any, name: str | None, group: str) -> list[dict[str, Any]]:
    if isinstance(result, dict) and "error" in result:
        return [{"client": name or "decode", "group": group, "error": result["error"]}]
    rows = []
    for row in result:
        rows.append({"client": name or row.get("client"), "group": group, **row})
        if "error" in row:
            _log(f"  {rows[-1]['client']} dim {row['dim']} batch {row['batch']}: {row['error']}")
    return rows


# -- 2. live vLLM -------------------------------------------------------------------------


def live(n: int, queries: int) -> dict[str, Any]:
    """The same clients, the offline engine and embed_query latency against a live vLLM CPU
    server started with :mod:`vllm_embed.server`."""
    from vllm_embed.server import (
        ServerSpec,
        VLLMServer,
        ensure_cpu_server_env,
        packaged_model_path,
    )

    _log("live: preparing the vLLM CPU server environment (first run: minutes)")
    python = ensure_cpu_server_env()
    model_path = packaged_model_path(python)
    spec = ServerSpec(
        model=model_path, served_model_name="minilm", api_key="sk-bench-live", dtype="float32"
    )
    out: dict[str, Any] = {"texts": n, "model": "all-MiniLM-L6-v2 (minilm)", "clients": []}
    log_path = Path(tempfile.gettempdir()) / "vllm-embed-bench-server.log"
    _log(f"live: starting vLLM (log {log_path})")
    with VLLMServer(spec, python=str(python), log_path=log_path) as server:
        base = Cell(
            base_url=server.base_url,
            model="minilm",
            api_key="sk-bench-live",
            dim=384,
            batch=64,
            n=n,
            texts="live",
            rounds=1,
            budget_s=0,
            check=False,
        )
        _warm_up(server.base_url, "minilm", "sk-bench-live")
        # Two passes in opposite orders; each client keeps its better pass, so a burst of
        # other work on the machine does not decide the ranking.
        names = list(CLIENTS)
        passes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for order in (names, names[::-1]):
            for name in order:
                _log(f"live: {name}")
                result = run_worker(
                    "client", {"client": name, "cells": [cell_dict(base)]}, None, timeout=1800
                )
                passes[name] += _rows(result, name, CLIENTS[name][1])
        for name in names:
            good = [r for r in passes[name] if "vectors_per_s" in r]
            best = max(good, key=lambda r: r["vectors_per_s"]) if good else passes[name][0]
            out["clients"].append({**best, "passes": len(passes[name])})
        _log("live: embed_query latency vs raw httpx")
        out["query"] = run_worker(
            "query", {"cell": cell_dict(base), "n": queries}, None, timeout=600
        )
    _log("live: offline engine LLM(...).embed (server stopped first)")
    out["offline"] = offline_engine(str(python), model_path, n)
    return out


def _warm_up(base_url: str, model: str, api_key: str) -> None:
    """A few requests first: vLLM's first batches are slower than the steady state."""
    import httpx

    texts = live_texts(256)
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(headers=headers, timeout=300) as client:
        for start in range(0, len(texts), 64):
            body = {"model": model, "input": texts[start : start + 64]}
            client.post(f"{base_url}/embeddings", json=body).raise_for_status()


def offline_engine(python: str, model_path: str, n: int) -> dict[str, Any]:
    """Run ``_offline.py`` in the server environment's interpreter."""
    texts_file = Path(tempfile.mkstemp(suffix=".json")[1])
    texts_file.write_text(json.dumps(live_texts(n)))
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE="1")
    cmd = [python, str(BENCH_DIR / "_offline.py"), model_path, str(texts_file)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    except subprocess.TimeoutExpired:
        return {"error": "offline engine timed out after 1200 s"}
    finally:
        texts_file.unlink(missing_ok=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = proc.stderr.strip().splitlines()[-8:]
        return {"error": f"offline engine exited {proc.returncode}: " + " | ".join(tail)}
    # vLLM's shutdown sometimes aborts ("terminate called ...") after the result is printed.
    result: dict[str, Any] = {**json.loads(lines[-1]), "exit_code": proc.returncode}
    return result


# -- 3. scale-out -------------------------------------------------------------------------


def scaleout(rate: float, seconds: float, counts: tuple[int, ...]) -> list[dict[str, Any]]:
    """The core client over N fake servers each capped at ``rate`` vectors/s."""
    client_core, server_core = cores()
    rows: list[dict[str, Any]] = []
    dim, batch = 384, 64
    for count in counts:
        servers = [
            FakeEmbeddingServer(dim=dim, model=FAKE_MODEL, rate_limit=rate, cpus=[server_core])
            for _ in range(count)
        ]
        try:
            n = int(rate * count * seconds) // batch * batch
            cell = Cell(
                base_url=[s.base_url for s in servers],
                model=FAKE_MODEL,
                api_key=None,
                dim=dim,
                batch=batch,
                n=n,
                rounds=1,
                budget_s=0,
                extra={"max_concurrency": 2 * count},
            )
            _log(f"scale-out: {count} server(s) x {rate:.0f} vectors/s")
            result = run_worker(
                "client",
                {"client": "vllm-embed sync (numpy)", "cells": [cell_dict(cell)]},
                client_core,
                timeout=600,
            )
            served = [s.stats()["vectors"] for s in servers]
        finally:
            for server in servers:
                server.stop()
        row = _rows(result, "vllm-embed sync (numpy)", "core")[0]
        rows.append({"servers": count, "rate_per_server": rate, "per_server": served, **row})
    return rows


def quick_cell(cell: Cell, **changes: Any) -> Cell:
    return replace(cell, **changes)
