"""A real Milvus server (standalone 2.3.5, embedded etcd + local storage) for the tests.

The PyPI package ``milvus`` (``milvus==2.3.5``, installed by the ``lancedb_milvus`` nox
session) ships Milvus' standalone binary; this starts ONE server per test session in a
temporary directory, on a free proxy port (its other ports are found free by the
package), with authentication on (user ``root``, password ``Milvus``: the server's
default), waits for its health endpoint, adds the user the tests connect as
(``token``: ``vllm_tests:<password>``, a password that appears nowhere else) and stops
it at the end. A server that will not start fails the run with the end of its logs;
nothing skips::

    from vllm_embed_testing.milvus_server import milvus_server  # noqa: F401

Tests get a `MilvusServer` whose ``uri`` carries no credentials.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["MILVUS_TOKEN", "TEST_PASSWORD", "MilvusServer", "milvus_server", "start_milvus"]

#: The credentials of a fresh Milvus with authentication on (``user:password``).
ROOT_TOKEN = "root:Milvus"
#: The test user's password: a string no output may contain.
TEST_PASSWORD = "pw-7Qx9-vllm-embed-tests"
MILVUS_TOKEN = f"vllm_tests:{TEST_PASSWORD}"


@dataclass
class MilvusServer:
    """A running server: ``uri`` (``http://127.0.0.1:PORT``), ``token``, its data dir."""

    uri: str
    token: str
    port: int
    base_dir: Path
    handle: Any

    def client(self, db_name: str = "") -> Any:
        from pymilvus import MilvusClient

        return MilvusClient(uri=self.uri, token=self.token, db_name=db_name)

    def logs(self, tail: int = 4000) -> str:
        out = []
        for log in sorted((self.base_dir / "logs").glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace")
            out.append(f"--- {log.name} (last {tail} chars) ---\n{text[-tail:]}")
        return "\n".join(out) or "(no logs written)"

    def stop(self) -> None:
        self.handle.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_milvus(base_dir: Path, timeout: float = 120.0) -> MilvusServer:
    """Start a server in ``base_dir``; `pytest.fail` with its logs if it does not come up."""
    try:
        from milvus import MilvusServer as _Embedded
    except ImportError:
        pytest.fail(
            "the `milvus` package (embedded Milvus 2.3.5) is not installed: "
            "pip install milvus==2.3.5 (the lancedb_milvus nox session does).",
            pytrace=False,
        )
    handle = _Embedded(wait_for_started=False)
    handle.set_base_dir(str(base_dir))
    handle.listen_port = _free_port()
    handle.config.set("authorization_enabled", True)
    _own_etcd_ports(handle, base_dir)
    cwd = os.getcwd()
    try:
        with warnings.catch_warnings():
            # the package's port search leaves the socket of every busy port it tried open
            warnings.simplefilter("ignore", ResourceWarning)
            handle.start()  # chdir()s into base_dir and back
    finally:
        os.chdir(cwd)
    server = MilvusServer(
        uri=f"http://127.0.0.1:{handle.listen_port}",
        token=ROOT_TOKEN,
        port=handle.listen_port,
        base_dir=base_dir,
        handle=handle,
    )
    try:
        handle.wait_started(timeout=int(timeout * 1000))
        _wait_for_queries(server, time.monotonic() + timeout)
        root = server.client()
        try:
            root.create_user("vllm_tests", TEST_PASSWORD)
            root.grant_role("vllm_tests", "admin")
        finally:
            root.close()
        server.token = MILVUS_TOKEN
    except Exception as exc:
        logs = server.logs()
        handle.stop()
        pytest.fail(
            f"the Milvus server did not start on port {server.port} "
            f"({type(exc).__name__}: {exc}):\n{logs}",
            pytrace=False,
        )
    return server


def _own_etcd_ports(handle: Any, base_dir: Path) -> None:
    """Give the embedded etcd free ports: by default it listens on 2379 / 2380 whatever the
    config says, so a second server on the machine (another test run) could not start."""
    client, peer = _free_port(), _free_port()
    etcd = base_dir / "etcd.yaml"
    etcd.write_text(
        "name: default\n"
        f"data-dir: {base_dir / 'data' / 'etcd.data'}\n"
        f"listen-client-urls: http://127.0.0.1:{client}\n"
        f"advertise-client-urls: http://127.0.0.1:{client}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: default=http://127.0.0.1:{peer}\n",
        encoding="utf-8",
    )
    config = handle.config
    config.template_text = config.template_text.replace(
        "etcd:\n  endpoints:", f"etcd:\n  config:\n    path: {etcd}\n  endpoints:", 1
    )
    config.configs["etcd_port"] = client  # etcd.endpoints: the same port


def _wait_for_queries(server: MilvusServer, deadline: float) -> None:
    """Healthy is not yet serving: wait until a client can list collections."""
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = server.client()
            try:
                client.list_collections()
                return
            finally:
                client.close()
        except Exception as exc:  # the proxy comes up after the health endpoint
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"no client could connect: {last}")


_SERVER = pytest.StashKey[MilvusServer]()


@pytest.fixture(scope="session")
def milvus_server(request: pytest.FixtureRequest) -> Iterator[MilvusServer]:
    """One Milvus server for the test session (stopped, its directory removed, at the end).

    One per pytest session even when two folders' modules import this fixture
    (tests/doctor beside tests/stores_lancedb_milvus): the first instance owns and stops it.
    """
    stash = request.session.stash
    if _SERVER in stash:
        yield stash[_SERVER]
        return
    with tempfile.TemporaryDirectory(prefix="vllm-embed-milvus-") as tmp:
        server = start_milvus(Path(tmp))
        stash[_SERVER] = server
        try:
            yield server
        finally:
            del stash[_SERVER]
            server.stop()
