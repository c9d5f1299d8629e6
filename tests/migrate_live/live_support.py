"""What every live migration test embeds and asks (all-MiniLM-L6-v2 on the live server):
six facts, a question only one of them answers, and the dimensions involved."""

from __future__ import annotations

from pathlib import Path

from vllm_embed_testing.migration import live_embeddings  # noqa: F401 (the suites' name)

#: all-MiniLM-L6-v2's dimension (the live server's model).
MINILM_DIM = 384
#: The dimension of the stores before the migration (a stand-in old model).
OLD_DIM = 24
FACTS = [
    "The Eiffel Tower is a wrought-iron tower in Paris.",
    "Photosynthesis lets plants turn sunlight into chemical energy.",
    "The Pacific is the largest and deepest ocean on Earth.",
    "Rust guarantees memory safety without a garbage collector.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Mount Everest is the highest mountain above sea level.",
]
QUESTION = "Which ocean is the biggest?"
#: The index in `FACTS` of the one fact that answers `QUESTION`.
ANSWER = 2


def langchain_faiss(folder: Path, dim: int) -> Path:
    """A cosine FAISS store (IndexFlatIP, normalize_L2) saved by langchain-community."""
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = FAISS.from_texts(
        FACTS,
        DeterministicFakeEmbedding(size=dim),
        metadatas=[{"n": i} for i in range(len(FACTS))],
        ids=[f"f{i}" for i in range(len(FACTS))],
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        normalize_L2=True,
    )
    db.save_local(str(folder))
    return folder
