"""A stand-in ``vllm`` package for the server launcher's tests (``vllm_embed.server``).

:func:`install_fake_vllm` writes a ``vllm`` package into a folder; put that folder on
``PYTHONPATH`` and ``python -m vllm.entrypoints.openai.api_server`` runs it: a process that
takes vLLM's command line and answers on ``--host``/``--port`` with the project's one fake
vLLM (:class:`~vllm_embed_testing.fake_server.InProcessFakeVLLM`: /health, /v1/models,
/v1/embeddings, ...; ``--served-model-name`` is the model it serves). Behaviour comes from
``FAKE_VLLM_MODE``:

- ``ok``: serve, with one worker child (like vLLM's engine process);
- ``exit``: print a message and exit 3 (a failed start);
- ``never``: stay alive but never listen (a hung start);
- ``stubborn``: like ``ok`` but ignore SIGTERM (stop() must SIGKILL the group);
- ``once``: like ``ok``, then exit 0 shortly after answering the first ``/health``.

It records its argv, pid, its worker's pid and whether ``VLLM_API_KEY`` was set in
``$FAKE_VLLM_RECORD`` (JSON).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["install_fake_vllm"]

_SERVER = r"""
import http.server, json, os, signal, subprocess, sys, threading, time

mode = os.environ.get("FAKE_VLLM_MODE", "ok")
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
host = args[args.index("--host") + 1]
name_flag = "--served-model-name" if "--served-model-name" in args else "--model"
model = args[args.index(name_flag) + 1]
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
record = {
    "argv": args,
    "pid": os.getpid(),
    "worker": worker.pid,
    "api_key_env": os.environ.get("VLLM_API_KEY"),
    "kvcache": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
}
with open(os.environ["FAKE_VLLM_RECORD"], "w") as f:
    json.dump(record, f)
print("fake vllm starting", flush=True)
signal.signal(signal.SIGTERM, lambda *_: (worker.kill(), os._exit(0)))
if mode == "exit":
    print("RuntimeError: fake engine failed to start", flush=True)
    worker.kill()
    sys.exit(3)
if mode == "never":
    time.sleep(600)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:  # like vLLM: on SIGTERM, stop the workers, then exit
    signal.signal(signal.SIGTERM, lambda *_: (worker.kill(), os._exit(0)))

sys.path.insert(0, SHARED)  # imported late: a start that fails must fail fast
from vllm_embed_testing.fake_server import FakeServerConfig, InProcessFakeVLLM

fake = InProcessFakeVLLM(
    FakeServerConfig(dim=8, model=model, api_key=os.environ.get("VLLM_API_KEY"))
)


class Handler(http.server.BaseHTTPRequestHandler):
    def _serve(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        status, headers, content = fake.answer(
            self.command, self.path, dict(self.headers.items()), body
        )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        if mode == "once" and self.path == "/health":
            threading.Timer(0.3, lambda: (worker.kill(), os._exit(0))).start()

    do_GET = do_POST = _serve

    def log_message(self, *a):
        pass


http.server.HTTPServer((host, port), Handler).serve_forever()
"""


def install_fake_vllm(root: Path) -> Path:
    """Write the fake ``vllm`` package under ``root``; return ``root``."""
    pkg = root / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for folder in (root / "vllm", root / "vllm" / "entrypoints", pkg):
        (folder / "__init__.py").write_text("")
    shared = str(Path(__file__).resolve().parent.parent)
    (pkg / "api_server.py").write_text(f"SHARED = {shared!r}\n" + _SERVER)
    return root
