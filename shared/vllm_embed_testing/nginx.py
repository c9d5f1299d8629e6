"""A real nginx (Debian's package) in front of a test server, with its default proxy settings.

What users put between the client and vLLM: ``proxy_pass`` with nothing tuned, so
``proxy_buffer_size`` is nginx's default of one memory page (the buffer a ``bytes``
answer's ``metadata`` header overflows, answered with 502 "upstream sent too big header").
Each :class:`NginxProxy` serves:

- ``http://127.0.0.1:<port>/`` -> the upstream (``base_url``: ``.../v1``);
- ``https://localhost:<tls_port>/embed/`` -> the upstream's root, with a certificate
  for ``localhost`` / ``127.0.0.1`` signed by a test CA made here (``ca_path``), so a
  client needs ``verify=ca_path`` (a private CA) and the gateway has a path prefix;
- ``X-Gateway-Key``: when ``required_header`` is set, requests without that header and
  value get 401 from nginx itself (a gateway that wants its own header).

nginx is started once per test session (``nginx_proxy`` in the conftests) and stopped at
the end; it fails loudly, with its error log, when it cannot start. ``.ci/run`` installs
the package (``nginx-light``) and ``openssl``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NginxError", "NginxProxy", "make_test_ca"]

#: Where Debian's package puts the binary (also looked up on PATH).
NGINX_BINARIES = ("/usr/sbin/nginx", "nginx")


class NginxError(RuntimeError):
    """nginx (or openssl for the test CA) is missing or did not start; says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str, candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if found:
            return found
    raise NginxError(
        f"{name} is not installed. On Debian: apt-get install nginx-light openssl "
        "(.ci/run does this)."
    )


def _openssl(*args: str, cwd: Path) -> None:
    openssl = _binary("openssl", ("openssl", "/usr/bin/openssl"))
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NginxError(f"openssl {' '.join(args[:2])} failed:\n{proc.stderr}")


@dataclass(frozen=True)
class CertAuthority:
    """A CA certificate and a server certificate (localhost, 127.0.0.1) it signed."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def make_test_ca(directory: Path) -> CertAuthority:
    """A private CA and a server certificate for ``localhost`` and ``127.0.0.1``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=vllm-embed test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    return CertAuthority(directory / "ca.pem", directory / "server.pem", directory / "server.key")


_CONFIG = """\
{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    # Nothing else is tuned: proxy_buffer_size, proxy_buffers, timeouts are nginx's own.
    upstream backend {{ server {upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {gate}proxy_pass http://backend;
        }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location /embed/ {{
            {gate}proxy_pass http://backend/;
        }}
    }}
}}
"""


class NginxProxy:
    """nginx proxying to ``upstream`` (``host:port``); see the module docstring."""

    def __init__(
        self, upstream: str, work: Path, *, required_header: tuple[str, str] | None = None
    ) -> None:
        self.upstream = upstream
        self.work = work
        self.port = _free_port()
        self.tls_port = _free_port()
        self.required_header = required_header
        self.ca = make_test_ca(work / "ca")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def tls_base_url(self) -> str:
        """The TLS gateway with a path prefix: ``https://localhost:<port>/embed/v1``."""
        return f"https://localhost:{self.tls_port}/embed/v1"

    @property
    def ca_path(self) -> Path:
        return self.ca.ca_path

    @property
    def error_log(self) -> Path:
        return self.work / "error.log"

    def error_log_text(self) -> str:
        try:
            return self.error_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 20.0) -> NginxProxy:
        nginx = _binary("nginx", NGINX_BINARIES)
        gate = ""
        if self.required_header is not None:
            name, value = self.required_header
            var = "http_" + name.lower().replace("-", "_")
            gate = f'if (${var} != "{value}") {{ return 401; }}\n            '
        config = _CONFIG.format(
            user="user root;\n" if os.geteuid() == 0 else "",
            work=self.work,
            upstream=self.upstream,
            port=self.port,
            tls_port=self.tls_port,
            cert=self.ca.cert_path,
            key=self.ca.key_path,
            gate=gate,
        )
        conf = self.work / "nginx.conf"
        conf.write_text(config, encoding="utf-8")
        with open(self.work / "stderr.log", "wb") as stderr_file:  # the child keeps its copy
            self._proc = subprocess.Popen(
                [nginx, "-c", str(conf), "-p", str(self.work)],
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
                    socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5),
                ):
                    return self
            except OSError:
                time.sleep(0.05)
        stderr = (self.work / "stderr.log").read_text(encoding="utf-8", errors="replace")
        self.stop()
        raise NginxError(
            f"nginx did not start on 127.0.0.1:{self.port}:\n{stderr}\n{self.error_log_text()}"
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
