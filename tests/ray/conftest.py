"""Ray tests: a real two-node local Ray cluster (``ray.cluster_utils.Cluster``) started once
per session and stopped at the end, fake embedding servers in their own processes, and the
live vLLM server for the contract test. Nothing here skips.

Every node gets few logical CPUs and a small object store: the machine has 2 cores and is
shared. Sockets are on (Ray and the fake servers talk over 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vllm_embed_testing.pytest_plugin import fake_servers
from vllm_embed_testing.vllm import vllm_server, vllm_server_pool, vllm_server_python

__all__ = ["fake_servers", "vllm_server", "vllm_server_pool", "vllm_server_python"]

NODE_CPUS = 2
OBJECT_STORE_BYTES = 150 * 2**20


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.enable_socket)


def _ray_children() -> set[int]:
    """Ray processes this test process started (gcs_server, raylet, agents)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"/ray/" in cmdline:
            found.add(int(entry))
    return found


def _start_cluster(attempts: int = 5) -> Any:
    """Head + one worker node. A raylet must see its agent within
    ``agent_register_timeout_ms`` and register within 30 s (fixed in Ray); on a loaded shared
    machine that can run out, so a failed start is torn down (including processes a failed
    node left behind) and tried again; the last failure is raised (never skipped)."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": NODE_CPUS, "object_store_memory": OBJECT_STORE_BYTES}
    before = _ray_children()
    for attempt in range(1, attempts + 1):
        cluster = Cluster()
        try:
            cluster.add_node(**node, include_dashboard=False)  # the head
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            return cluster
        except Exception:
            cluster.shutdown()
            for pid in _ray_children() - before:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """Two Ray nodes on this machine (head + one worker node), connected to this process."""
    import ray
    import ray.data

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # No idle Python workers started ahead of need: less CPU while the raylets register.
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    os.environ.setdefault("RAY_enable_worker_prestart", "0")
    # The raylet waits this long for its (Python) agent; Ray's default is short for a
    # machine whose cores are shared with other jobs.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    cluster = _start_cluster()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2, alive
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


# the `vllm-embed embed` helpers (tests/embed/embed_support.py), for the --ray job test
sys.path.append(str(Path(__file__).resolve().parents[1] / "embed"))
