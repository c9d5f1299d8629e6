"""Starting, watching and stopping one vLLM server process.

The server runs in its own process group (vLLM spawns engine workers), so
:meth:`VLLMServer.stop` can end the whole tree: SIGTERM to the group, then SIGKILL
to whatever is left after a grace period. An ``atexit`` hook stops servers the
caller forgot, so a crashed test run leaves no strays.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

from vllm_embed._errors import ServerStartError

from ._logs import tail
from ._spec import ServerSpec, build_command, build_env, format_command

__all__ = ["DEFAULT_START_TIMEOUT", "VLLMServer", "free_port"]

logger = logging.getLogger("vllm_embed.server")

#: A CPU server is ready in 60-100 s on two cores; leave room for a busy CI machine.
DEFAULT_START_TIMEOUT = 420.0
_STOP_GRACE = 20.0
_POLL_INTERVAL = 0.5
# Never route 127.0.0.1 traffic through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_LIVE: weakref.WeakSet[VLLMServer] = weakref.WeakSet()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this child when the thread that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class VLLMServer:
    """A vLLM OpenAI-compatible embedding server in a child process group.

    >>> with VLLMServer(ServerSpec(model=path, served_model_name="minilm"), python=py) as s:
    ...     client = EmbeddingClient(s.base_url, api_key=s.api_key)

    ``python`` is the interpreter that has vLLM (default: this one). ``cpu=True``
    (the default) sets the CPU-only variables (``VLLM_CPU_KVCACHE_SPACE``), which GPU
    builds ignore. The log goes to ``log_path`` (a temporary file by default) and its
    tail is in every :class:`ServerStartError`.

    With ``stop_with_parent=True`` (Linux) the server also gets SIGTERM if this
    process is killed outright (a CI timeout, ``kill -9``), so nothing is left
    running. The signal follows the *thread* that called :meth:`start`: start
    long-lived servers from the main thread, or pass ``stop_with_parent=False``.
    """

    def __init__(
        self,
        spec: ServerSpec,
        python: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        *,
        cpu: bool = True,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_with_parent: bool = True,
    ) -> None:
        self.spec = spec
        self.python = str(python or sys.executable)
        self.cpu = cpu
        self.start_timeout = start_timeout
        self.stop_with_parent = stop_with_parent and sys.platform == "linux"
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.port: int | None = spec.port
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self.startup_seconds: float | None = None

    # -- public names -------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """``http://host:port`` (where /health, /version, /tokenize live)."""
        if self.port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return f"http://{_url_host(self.spec.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    @property
    def api_key(self) -> str | None:
        return self.spec.api_key

    @property
    def model(self) -> str:
        """The model name clients send (the served name)."""
        return self.spec.name

    def command(self) -> list[str]:
        """The argv used (or to be used) to start the server. Holds no secret."""
        return build_command(self.spec, self.python, port=self.port or 0)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        url = self.root_url if self.port else "-"
        return f"<VLLMServer {self.model!r} {url} {state}>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle ----------------------------------------------------------------
    def start(self, *, wait: bool = True) -> VLLMServer:
        """Start the process (and by default wait until ``/health`` answers 200)."""
        if self.process is not None:
            raise RuntimeError("this server was already started")
        if self.port is None:
            self.port = free_port(self.spec.host if self.spec.host != "0.0.0.0" else "127.0.0.1")
        cmd = build_command(self.spec, self.python, port=self.port)
        env = build_env(self.spec, cpu=self.cpu)
        logger.info("starting vLLM: %s (log: %s)", format_command(cmd), self.log_path)
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_handle.write(f"$ {format_command(cmd)}\n".encode())
        self._log_handle.flush()
        self._started_at = time.monotonic()
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.stop_with_parent else None,
        )
        _LIVE.add(self)
        if wait:
            self.wait_ready()
        return self

    def health(self, timeout: float = 2.0) -> bool:
        """True when ``GET /health`` answers 200 right now."""
        try:
            with _OPENER.open(f"{self.root_url}/health", timeout=timeout) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll ``/health`` until 200; stop and raise :class:`ServerStartError` if the
        process exits or the deadline passes."""
        if self.process is None:
            raise RuntimeError("call start() first")
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            code = self.process.poll()
            if code is not None:
                self._fail(f"the vLLM server exited with code {code} before it was ready")
            if self.health():
                self.startup_seconds = time.monotonic() - self._started_at
                logger.info("vLLM ready at %s in %.1f s", self.base_url, self.startup_seconds)
                return
            if time.monotonic() >= deadline:
                self._fail(f"the vLLM server did not answer /health within {limit:.0f} s")
            time.sleep(_POLL_INTERVAL)

    def _fail(self, message: str) -> None:
        self.stop()
        raise ServerStartError(
            f"{message}: {format_command(self.command())}",
            log_path=self.log_path,
            log_tail=tail(self.log_path),
        )

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """End the server's whole process group (SIGTERM, then SIGKILL). Idempotent."""
        proc = self.process
        if proc is not None:
            pgid = proc.pid  # start_new_session: the group id is the leader's pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning("vLLM did not stop in %.0f s; killing it", grace)
            # Workers may outlive the leader: wait briefly, then kill what is left.
            deadline = time.monotonic() + min(grace, 5.0)
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        _LIVE.discard(self)

    def __enter__(self) -> VLLMServer:
        if self.process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - exercised at interpreter exit
    for server in list(_LIVE):
        server.stop(grace=5.0)
