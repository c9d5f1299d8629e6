"""Check every package under packages/ as a user would get it (run by `nox -s package`).

Builds a wheel and an sdist of each package, runs `twine check --strict` on them, then for
each package: a fresh virtualenv, the package installed from the built files plus the
package registries only, an import whose version must match the distribution's, and the
package README's quick start (its first ```python block) run against the fake server. A
missing dependency fails here.

Usage: python tools/check_packages.py WORKDIR  (needs `uv` and `twine` on PATH; the
interpreter running this script is the one the virtualenvs are made from).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each package's README quick start (its first ```python block) is run against the fake
# server under this model name, with the README's server URL swapped for the fake one.
README_URLS = ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1")
README_MODEL = "minilm"

# A README example that has not finished by then is hung (seen: a local Ray driver
# waiting on a raylet whose workers had died); it is killed with its
# whole process group (Ray's daemons included) and tried once more, then fails loudly.
EXAMPLE_TIMEOUT_S = 300
_EXAMPLE_ENV = {
    # Ray (vllm-embed-ray's example starts a local Ray): the settings tests/ray uses.
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_enable_worker_prestart": "0",
    "RAY_agent_register_timeout_ms": "120000",
}


class CheckFailed(Exception):
    """A package failed a check; the message says which and how."""


def log(message: str) -> None:
    print(f"check_packages > {message}", flush=True)


def run(*args: str) -> None:
    log(" ".join(args))
    code = subprocess.run(args, check=False).returncode
    if code != 0:
        raise CheckFailed(f"`{' '.join(args[:3])} ...` failed with exit code {code}")


def packages() -> list[tuple[str, Path]]:
    """(distribution name, directory) of every package under packages/, core first."""
    found = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
        found.append((name, pyproject.parent))
    return sorted(found, key=lambda item: item[0] != "vllm-embed")


def readme_example(readme: Path, base_url: str) -> str:
    text = readme.read_text(encoding="utf-8")
    start = text.index("```python\n") + len("```python\n")
    code = text[start : text.index("\n```", start)]
    for url in README_URLS:
        code = code.replace(url, base_url)
    return code


def start_fake_server(python: str) -> tuple[subprocess.Popen[bytes], str]:
    server = ROOT / "shared" / "vllm_embed_testing" / "fake_server" / "__main__.py"
    config = json.dumps({"model": README_MODEL, "dim": 384})
    process = subprocess.Popen(
        [python, str(server), config], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise CheckFailed(f"fake server did not start (exit code {process.wait()})")
    return process, f"http://127.0.0.1:{json.loads(line)['port']}/v1"


def run_example(python: str, example: str, work: Path) -> None:
    # TMPDIR must not lie inside a virtualenv (nox's session tmp does; the package session
    # passes the system one): Ray refuses a temp_dir under a virtualenv root ("temp_dir must
    # not be child directory of virtualenv root"), its workers die, and ray.init waits forever.
    tmp = Path(tempfile.gettempdir()).resolve()
    if (tmp / "pyvenv.cfg").exists() or any((p / "pyvenv.cfg").exists() for p in tmp.parents):
        raise CheckFailed(f"TMPDIR {tmp} lies inside a virtualenv; give the system one")
    env = {**os.environ, **_EXAMPLE_ENV, "TMPDIR": str(tmp)}
    for attempt in (1, 2):
        log(f"README example in {work.name} (attempt {attempt})")
        proc = subprocess.Popen([python, "-c", example], cwd=work, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=EXAMPLE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log(f"warning: README example in {work.name} hung for {EXAMPLE_TIMEOUT_S} s")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running (Ray daemons)
        if code != 0:
            raise CheckFailed(f"README example in {work.name} failed with exit code {code}")
        return
    raise CheckFailed(f"README example in {work.name} hung twice ({EXAMPLE_TIMEOUT_S} s each)")


def check(tmp: Path) -> None:
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    found = packages()
    for _, directory in found:
        run("uv", "build", "--no-sources", "--out-dir", str(dist), str(directory))
    built = sorted(str(f) for pattern in ("*.whl", "*.tar.gz") for f in dist.glob(pattern))
    run("twine", "check", "--strict", *built)

    refresh = [arg for name, _ in found for arg in ("--refresh-package", name)]
    python = sys.executable
    server, base_url = start_fake_server(python)
    try:
        for name, directory in found:
            wheel = next(dist.glob(f"{name.replace('-', '_')}-*.whl"))
            version = wheel.name.split("-")[1]
            venv = tmp / f"venv-{name}"
            shutil.rmtree(venv, ignore_errors=True)
            run("uv", "venv", "--quiet", "--python", python, str(venv))
            venv_python = str(venv / "bin" / "python")
            # --refresh-package: uv's cache keeps a wheel per file name; ours must come
            # from this build, never from an earlier one of the same version.
            run(
                "uv", "pip", "install", "--python", venv_python, "--find-links", str(dist),
                *refresh, f"{name}=={version}",
            )  # fmt: skip
            module = name.replace("-", "_")
            imported = (
                "import importlib.metadata as m, sys; "
                f"import {module}; "
                f"assert m.version({name!r}) == {module}.__version__ == {version!r}; "
                f"print({module}.__name__, m.version({name!r}), 'from', {module}.__file__)"
            )
            run(venv_python, "-c", imported)
            work = tmp / f"readme-{name}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            example = readme_example(directory / "README.md", base_url)
            run_example(venv_python, example, work)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        check(Path(argv[0]).resolve())
    except CheckFailed as exc:
        print(f"check_packages: FAILED: {exc}", file=sys.stderr)
        return 1
    log(f"all {len(packages())} packages built, installed, imported and their README run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
