"""A stand-in for ``vllm.entrypoints.openai.api_server`` used by the launcher's unit tests.

:func:`install_fake_vllm` writes a ``vllm`` package into a folder; put that folder on
``PYTHONPATH`` and ``python -m vllm.entrypoints.openai.api_server`` runs the fake.
Behaviour comes from ``FAKE_VLLM_MODE``:

- ``ok``: serve ``GET /health`` (200) on ``--host``/``--port``, with one worker child;
- ``exit``: print a message and exit 3 (a failed start);
- ``never``: stay alive but never listen (a hung start);
- ``stubborn``: like ``ok`` but ignore SIGTERM (stop() must SIGKILL the group);
- ``once``: like ``ok``, then exit 0 shortly after answering the first ``/health``.

It records its argv, pid, its worker's pid and whether ``VLLM_API_KEY`` was set in
``$FAKE_VLLM_RECORD`` (JSON).
"""

from __future__ import annotations

from pathlib import Path

_SERVER = r"""
import http.server, json, os, signal, subprocess, sys, time

mode = os.environ.get("FAKE_VLLM_MODE", "ok")
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
host = args[args.index("--host") + 1]
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


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if mode == "once" and self.path == "/health":
            import threading
            threading.Timer(0.3, lambda: (worker.kill(), os._exit(0))).start()

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
    (pkg / "api_server.py").write_text(_SERVER)
    return root
