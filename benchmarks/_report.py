"""The performance targets checked against the measured rows, and the Markdown tables.

The targets: the core client (numpy, dimension 1024, batch 64 and 256) at least 60,000
vectors/s and at most 15 µs of client CPU per vector, at least 10x the openai SDK's default,
the LangChain adapter at least 3x langchain-openai; with every setting at its default, at
least `DEFAULTS_TARGETS` vectors/s; thin adapters keep `ADAPTER_SHARE` of the core list
row; live, at least 0.95x vLLM's offline engine and 1x the best peer, `embed_query` within
1 ms of raw httpx; scale-out at least 0.9x of N times one server.
"""

from __future__ import annotations

from typing import Any

CORE_NUMPY = ("vllm-embed sync (numpy)", "vllm-embed async (numpy)")
LC_ADAPTER = "vllm-embed-langchain (list)"
LC_OPENAI = ("langchain-openai (default)", "langchain-openai (chunk_size=batch)")
OPENAI_DEFAULT = "openai SDK (default)"
#: Thin adapters against the core client's list conversion (``embed_documents_list``):
#: (adapter row, core row), and the share of the core's vectors/s the adapter must keep.
CORE_LIST = "vllm-embed sync (list)"
ADAPTER_OVERHEAD = (
    ("vllm-embed-pydantic-ai (list)", CORE_LIST),
    ("vllm-embed-dspy (numpy)", CORE_LIST),
)
ADAPTER_SHARE = 0.8
TARGET_DIM = 1024
#: Vectors/s with every setting at its default, by dimension (sync and async): the client
#: must be fast without tuning.
DEFAULTS_TARGETS = {384: 200_000, 1024: 150_000}


def _find(rows: list[dict[str, Any]], client: str, **where: Any) -> dict[str, Any] | None:
    for row in rows:
        if row.get("client") == client and all(row.get(k) == v for k, v in where.items()):
            return row if "vectors_per_s" in row else None
    return None


def _target(name: str, measured: float | None, op: str, target: float, unit: str) -> dict[str, Any]:
    if measured is None:
        return {
            "target": name,
            "measured": None,
            "op": op,
            "target_value": target,
            "unit": unit,
            "ratio": None,
            "pass": False,
            "note": "not measured",
        }
    ok = measured >= target if op == ">=" else measured <= target
    return {
        "target": name,
        "measured": measured,
        "op": op,
        "target_value": target,
        "unit": unit,
        "ratio": measured / target if target else None,
        "pass": ok,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rows = results.get("ceiling") or []
    for dim, target in DEFAULTS_TARGETS.items():
        for client in CORE_NUMPY:
            if not any(r.get("client") == client and r.get("dim") == dim for r in rows):
                continue
            row = _find(rows, client, dim=dim, batch=None)
            out.append(
                _target(
                    f"{client}: vectors/s, default settings (dim {dim})",
                    row and row["vectors_per_s"],
                    ">=",
                    target,
                    "vectors/s",
                )
            )
    batches = sorted(
        {r["batch"] for r in rows if r.get("dim") == TARGET_DIM and r.get("batch") is not None}
    )
    for batch in batches:
        cell = {"dim": TARGET_DIM, "batch": batch}
        where = f"dim {TARGET_DIM}, batch {batch}"
        for client in CORE_NUMPY:
            row = _find(rows, client, **cell)
            out.append(
                _target(
                    f"{client}: vectors/s ({where})",
                    row and row["vectors_per_s"],
                    ">=",
                    60_000,
                    "vectors/s",
                )
            )
            out.append(
                _target(
                    f"{client}: client CPU per vector ({where})",
                    row and row["cpu_us_per_vector"],
                    "<=",
                    15,
                    "µs",
                )
            )
        core = _find(rows, CORE_NUMPY[0], **cell)
        sdk = _find(rows, OPENAI_DEFAULT, **cell)
        out.append(
            _target(
                f"vllm-embed sync vs openai SDK default ({where})",
                core and sdk and core["vectors_per_s"] / sdk["vectors_per_s"],
                ">=",
                10,
                "x",
            )
        )
        for adapter_name, core_name in ADAPTER_OVERHEAD:
            thin, base = _find(rows, adapter_name, **cell), _find(rows, core_name, **cell)
            out.append(
                _target(
                    f"{adapter_name} vs {core_name} ({where})",
                    thin and base and thin["vectors_per_s"] / base["vectors_per_s"],
                    ">=",
                    ADAPTER_SHARE,
                    "x",
                )
            )
        adapter = _find(rows, LC_ADAPTER, **cell)
        for peer in LC_OPENAI:
            lc = _find(rows, peer, **cell)
            out.append(
                _target(
                    f"LangChain adapter vs {peer} ({where})",
                    adapter and lc and adapter["vectors_per_s"] / lc["vectors_per_s"],
                    ">=",
                    3,
                    "x",
                )
            )
    live = results.get("live")
    if isinstance(live, dict) and "clients" in live:
        clients = live["clients"]
        core = _find(clients, CORE_NUMPY[0])
        offline = live.get("offline") or {}
        out.append(
            _target(
                "live: vllm-embed sync vs offline engine",
                core
                and offline.get("texts_per_s")
                and core["vectors_per_s"] / offline["texts_per_s"],
                ">=",
                0.95,
                "x",
            )
        )
        peers = [r for r in clients if r.get("group") == "peer" and "vectors_per_s" in r]
        best = max(peers, key=lambda r: r["vectors_per_s"], default=None)
        out.append(
            _target(
                f"live: vllm-embed sync vs best peer ({best['client'] if best else '-'})",
                core and best and core["vectors_per_s"] / best["vectors_per_s"],
                ">=",
                1.0,
                "x",
            )
        )
        query = live.get("query") or {}
        out.append(
            _target(
                "live: embed_query overhead over raw httpx, p50",
                query.get("overhead_p50_ms"),
                "<=",
                1.0,
                "ms",
            )
        )
    scale = results.get("scaleout") or []
    one = next((r for r in scale if r.get("servers") == 1 and "vectors_per_s" in r), None)
    for row in scale:
        if row.get("servers", 1) > 1:
            measured = (
                row["vectors_per_s"] / (row["servers"] * one["vectors_per_s"])
                if one and "vectors_per_s" in row
                else None
            )
            out.append(
                _target(
                    f"scale-out: {row['servers']} servers vs {row['servers']} x one",
                    measured,
                    ">=",
                    0.9,
                    "x",
                )
            )
    return out


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _batch_label(batch: Any) -> str:
    return "default" if batch is None else str(batch)


def _client_rows(rows: list[dict[str, Any]], label: str = "vectors/s") -> str:
    body = []
    for row in rows:
        if "error" in row:
            body.append(
                [
                    row.get("client", "?"),
                    str(row.get("dim", "")),
                    _batch_label(row.get("batch", "")),
                    "error",
                    "-",
                    row["error"][:80],
                ]
            )
            continue
        body.append(
            [
                row["client"],
                str(row["dim"]),
                _batch_label(row["batch"]),
                _num(row["vectors_per_s"]),
                _num(row["cpu_us_per_vector"], 1),
                row.get("check", ""),
            ]
        )
    return _table(["client", "dim", "batch", label, "client CPU µs/vector", "check"], body)


def markdown(results: dict[str, Any]) -> str:
    parts = []
    m = results["machine"]
    parts.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Python {m['python']}; load average at start "
        f"{m.get('load_average_at_start')}, at end {results.get('load_average_at_end')} "
        f"(other work on the machine skews the figures). "
        f"Command: `{results['command']}`"
    )
    if results.get("ceiling"):
        rows = sorted(results["ceiling"], key=lambda r: (r.get("dim", 0), r.get("batch") or 0))
        parts.append(
            "### 1. Client ceiling (fake server on its own core, client pinned to "
            "another; median of rounds)\n\n" + _client_rows(rows)
        )
    live = results.get("live")
    if isinstance(live, dict) and "clients" in live:
        text = (
            f"### 2. Live vLLM CPU server ({live['model']}, {live['texts']} texts)\n\n"
            + _client_rows(live["clients"], "texts/s")
        )
        offline = live.get("offline") or {}
        if "texts_per_s" in offline:
            text += (
                f"\n\nOffline engine `LLM(...).embed`: {_num(offline['texts_per_s'])} "
                f"texts/s ({offline['texts']} texts, {offline['seconds']:.1f} s)"
            )
        else:
            text += f"\n\nOffline engine: {offline.get('error', 'not run')}"
        query = live.get("query") or {}
        if "embed_query" in query:
            text += "\n\n" + _table(
                ["query latency", "p50 ms", "p99 ms", "mean ms"],
                [
                    [
                        k,
                        _num(query[k]["p50_ms"], 2),
                        _num(query[k]["p99_ms"], 2),
                        _num(query[k]["mean_ms"], 2),
                    ]
                    for k in ("raw_httpx", "embed_query")
                ],
            )
        elif query:
            text += f"\n\nQuery latency: {query.get('error')}"
        parts.append(text)
    elif isinstance(live, dict):
        parts.append(f"### 2. Live vLLM\n\n{live.get('skipped') or live.get('error')}")
    if results.get("scaleout"):
        body = []
        for row in results["scaleout"]:
            body.append(
                [
                    str(row["servers"]),
                    _num(row["rate_per_server"]),
                    _num(row.get("vectors_per_s")),
                    _num(row.get("cpu_us_per_vector"), 1),
                    ", ".join(str(v) for v in row.get("per_server", [])),
                    row.get("check", row.get("error", ""))[:60],
                ]
            )
        parts.append(
            "### 3. Scale-out (core client, fake servers capped per server)\n\n"
            + _table(
                [
                    "servers",
                    "cap vectors/s each",
                    "vectors/s",
                    "CPU µs/vector",
                    "vectors per server",
                    "check",
                ],
                body,
            )
        )
    rows = results.get("targets") or []
    if rows:
        body = [
            [
                r["target"],
                _num(r["measured"], 2),
                f"{r['op']} {_num(r['target_value'], 2)} {r['unit']}",
                _num(r["ratio"], 2),
                "pass" if r["pass"] else "FAIL",
            ]
            for r in rows
        ]
        parts.append(
            "### Targets\n\n" + _table(["target", "measured", "target", "ratio", "result"], body)
        )
    return "\n\n".join(parts) + "\n"
