"""One benchmark measurement in a fresh interpreter: ``_worker.py MODE JSON``.

Modes (the last stdout line is the JSON result):

- ``client``: ``{"client": name, "cells": [Cell...]}`` -> one result per cell: vectors/s,
  client CPU µs per vector (``time.process_time``: every thread of this process), rounds.
- ``decode``: ``{"cells": [Cell...]}`` -> the physical reference: decoding the same response
  bodies with no HTTP (vLLM bytes -> numpy, base64 JSON -> numpy, float JSON -> lists).
- ``query``: ``{"cell": Cell, "n": int}`` -> ``embed_query`` latency of the core client and of
  a raw httpx request, interleaved, p50 / p99 in milliseconds.

The process pins itself to the core in ``BENCH_CORE`` (the fake server runs on another).
"""

from __future__ import annotations

import base64
import gc
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
from _common import Cell, ceiling_texts, live_texts, pin, query_texts


def _texts(cell: Cell) -> list[str]:
    return ceiling_texts(cell.n) if cell.texts == "ceiling" else live_texts(cell.n)


def _check(output: Any, texts: list[str], cell: Cell, kind: str) -> str:
    """'ok' if the output has the right type, shape and (fake server) values."""
    if kind == "numpy":
        if not isinstance(output, np.ndarray) or output.dtype != np.float32:
            return f"expected float32 ndarray, got {type(output).__name__}"
        array = output
    else:
        if not isinstance(output, list) or not all(type(x) is float for x in output[0][:4]):
            return f"expected list[list[float]], got {type(output).__name__}"
        array = np.asarray(output, dtype=np.float32)
    if array.shape != (len(texts), cell.dim):
        return f"shape {array.shape} != {(len(texts), cell.dim)}"
    if cell.check:
        from vllm_embed_testing.fake_server import fake_vector

        for i in (0, 1, len(texts) // 2, len(texts) - 1):
            if not np.allclose(array[i], fake_vector(texts[i], cell.dim), atol=1e-6):
                return f"row {i} does not match its text's vector"
    return "ok"


def run_client(name: str, cells: list[Cell]) -> list[dict[str, Any]]:
    from _clients import CLIENTS

    factory, _group = CLIENTS[name]
    results = []
    for cell in cells:
        texts = _texts(cell)
        runner = factory(cell)
        try:
            runner.embed(texts[: 2 * (cell.batch or 64)])  # connections, discovery, negotiation
            walls: list[float] = []
            cpus: list[float] = []
            status = "ok"
            started = time.perf_counter()
            while len(walls) < cell.rounds:
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                output = runner.embed(texts)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                status = _check(output, texts, cell, runner.output)
                del output
                if time.perf_counter() - started > cell.budget_s:
                    break
        except Exception as exc:  # a peer failing is a result, not a crash
            results.append({"dim": cell.dim, "batch": cell.batch, "error": repr(exc)[:300]})
            continue
        finally:
            runner.close()
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        results.append(
            {
                "dim": cell.dim,
                "batch": cell.batch,
                "vectors": len(texts),
                "rounds": len(walls),
                "vectors_per_s": len(texts) / wall,
                "cpu_us_per_vector": cpu / len(texts) * 1e6,
                "cpu_utilisation": cpu / wall,
                "output": runner.output,
                "check": status,
            }
        )
    return results


def _fetch_bodies(cell: Cell) -> dict[str, bytes]:
    import httpx

    texts = ceiling_texts(cell.batch)
    headers = {"Authorization": f"Bearer {cell.api_key}"} if cell.api_key else {}
    bodies = {}
    with httpx.Client(headers=headers, timeout=60) as client:
        for encoding in ("bytes", "base64", "float"):
            body = {"model": cell.model, "input": texts, "encoding_format": encoding}
            response = client.post(f"{cell.base_url}/embeddings", json=body)
            response.raise_for_status()
            bodies[encoding] = response.content
    return bodies


def _bytes_numpy(body: bytes, n_batches: int, batch: int, dim: int) -> None:
    out = np.empty((n_batches * batch, dim), dtype=np.float32)
    for b in range(n_batches):
        out[b * batch : (b + 1) * batch] = np.frombuffer(body, np.float32).reshape(batch, dim)


def _bytes_lists(body: bytes, n_batches: int, batch: int, dim: int) -> None:
    out: list[list[float]] = []
    for _ in range(n_batches):
        out.extend(np.frombuffer(body, np.float32).reshape(batch, dim).tolist())


def _base64_numpy(body: bytes, n_batches: int, batch: int, dim: int) -> None:
    out = np.empty((n_batches * batch, dim), dtype=np.float32)
    for b in range(n_batches):
        for i, item in enumerate(json.loads(body)["data"]):
            out[b * batch + i] = np.frombuffer(base64.b64decode(item["embedding"]), np.float32)


def _float_lists(body: bytes, n_batches: int, batch: int, dim: int) -> None:
    out: list[list[float]] = []
    for _ in range(n_batches):
        out.extend(item["embedding"] for item in json.loads(body)["data"])


DECODERS = (
    ("decode only: vLLM bytes -> numpy", "bytes", _bytes_numpy),
    ("decode only: vLLM bytes -> lists (tolist)", "bytes", _bytes_lists),
    ("decode only: base64 JSON -> numpy", "base64", _base64_numpy),
    ("decode only: float JSON -> lists", "float", _float_lists),
)


def run_decode(cells: list[Cell]) -> list[dict[str, Any]]:
    """Decode one batch's response body again and again into a full output (no HTTP)."""
    results = []
    for cell in cells:
        bodies = _fetch_bodies(cell)
        n_batches = cell.n // cell.batch
        for label, encoding, decode in DECODERS:
            # Python-object decoders are ~100x slower: fewer vectors give the same rate.
            slow = encoding == "float" or "lists" in label
            batches = min(n_batches, max(1, 4096 // cell.batch)) if slow else n_batches
            n = batches * cell.batch
            best_wall, best_cpu = float("inf"), float("inf")
            for _ in range(3):  # the floor: best of three, each with a fresh output
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                decode(bodies[encoding], batches, cell.batch, cell.dim)
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            results.append(
                {
                    "client": label,
                    "dim": cell.dim,
                    "batch": cell.batch,
                    "vectors": n,
                    "rounds": 3,
                    "vectors_per_s": n / best_wall,
                    "cpu_us_per_vector": best_cpu / n * 1e6,
                    "check": "ok",
                }
            )
    return results


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
    }


def run_query(cell: Cell, n: int) -> dict[str, Any]:
    """embed_query of the core client vs the same request made with bare httpx."""
    import httpx

    from vllm_embed import EmbeddingClient

    headers = {"Authorization": f"Bearer {cell.api_key}"} if cell.api_key else {}
    raw = httpx.Client(headers=headers, timeout=60)
    client = EmbeddingClient(cell.base_url, api_key=cell.api_key, model=cell.model)
    url = f"{cell.base_url}/embeddings"
    texts = query_texts(n + 10)

    def raw_query(text: str) -> np.ndarray:
        response = raw.post(url, json={"model": cell.model, "input": [text]})
        response.raise_for_status()
        return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)

    for text in texts[:10]:  # warm up both (connections, discovery, negotiation)
        raw_query(text)
        client.embed_query(text)
    raw_times: list[float] = []
    core_times: list[float] = []
    for text in texts[10:]:
        t0 = time.perf_counter()
        raw_query(text)
        raw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        client.embed_query(text)
        core_times.append(time.perf_counter() - t0)
    raw.close()
    client.close()
    raw_p, core_p = _percentiles(raw_times), _percentiles(core_times)
    return {
        "queries": n,
        "raw_httpx": raw_p,
        "embed_query": core_p,
        "overhead_p50_ms": core_p["p50_ms"] - raw_p["p50_ms"],
        "overhead_p99_ms": core_p["p99_ms"] - raw_p["p99_ms"],
    }


def main() -> None:
    mode, payload = sys.argv[1], json.loads(sys.argv[2])
    if os.environ.get("BENCH_CORE"):
        pin(int(os.environ["BENCH_CORE"]))
    if mode == "client":
        result: Any = run_client(payload["client"], [Cell(**c) for c in payload["cells"]])
    elif mode == "decode":
        result = run_decode([Cell(**c) for c in payload["cells"]])
    elif mode == "query":
        result = run_query(Cell(**payload["cell"]), payload["n"])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
